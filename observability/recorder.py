"""The recorder the engine writes a run's spans and events through (the `Recorder` protocol of
providers.llm.types), plus the start and finish of runs."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.db.models import Max
from django.utils import timezone

from observability.events import publish_run_events
from observability.models import Run, RunEvent, Span
from observability.rows import row_insert, row_update
from observability.writer import RowLock, ledger_write, unbroken


def jsonable(value: Any) -> Any:
    """Decimals become floats (money is a JSON number), tuples lists, mapping keys strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass
class RunHistory:
    """What the earlier executions of a run stored, which a resumed execution continues from
    (loaded by observability.replay): the next event number, the run's root span (still open),
    its pattern steps and its finished agent calls by key, and the run-level events the engine
    emitted (`pattern.step`), which its deterministic replay emits again and must not store twice."""

    next_seq: int
    root: Span
    steps: dict[str, Span]
    calls: dict[str, Span]
    step_events: deque[tuple[str, dict[str, Any]]]

    def replays_event(self, type: str, data: Mapping[str, Any]) -> bool:
        """Whether this run-level event is the next one already stored (then it is used up). The
        first one that differs ends the replay of events: from there on the run is new. The
        supervisor's own events (`run.*`) are never the engine's."""
        if type.startswith("run."):
            return False
        if self.step_events and self.step_events[0] == (type, jsonable(dict(data))):
            self.step_events.popleft()
            return True
        self.step_events.clear()
        return False


R = TypeVar("R")
Guard = Callable[[], Exception | None]  # a check a batch's writes are made under (see `batch`)

# The batch the current task is filling: its recorder, its task (a task started inside the batch
# inherits the variable, but writes for itself) and its items (see `RunRecorder.batch`).
_current_batch: contextvars.ContextVar[tuple[RunRecorder, asyncio.Task, list] | None] = (
    contextvars.ContextVar("recorder_batch", default=None)
)


class RunRecorder:
    """Writes spans and numbered events of one run; events are published after they are stored.

    Writes go through the group commit (`ledger_write`), so concurrent runs share transactions.
    Inside `batch()`, the writes the current task makes wait and go together as one write (how a
    run, or an agent, starts and finishes); its events are numbered, stored and published when it
    ends, so that concurrent agents of the run, writing meanwhile, never see seq go backwards.

    A batch with `defer` made by the run's work task itself (`defer_in`) waits longer: it goes with
    the run's next write, whichever task makes it, first in the same transaction. An agent running
    in the work task so starts in its first LLM call's write and ends in the run's last write (the
    supervisor's end of the run). Every write of the run carries what waits, and a write made
    while another one carries it queues behind that one, so nothing stored refers to a row that
    is not. (Batches of other tasks, a parallel step's agents, are stored when they end: their
    order against the task that awaits them must not change.)

    A write asked of the recorder is made even if its caller is cancelled while it waits (what it
    records happened: a span closed, an LLM call reserved and about to be made, whose caller's
    cancel handler then releases it); the cancel reaches the caller's next await. A batch with a
    `guard` (a run's admission) is the exception: cancelled while it waits, it is not made."""

    def __init__(self, run: Run, *, next_seq: int = 1, history: RunHistory | None = None, new: bool = False):
        self.run = run
        # `new`: the run is stored by this recorder's first write. Until that commits its id is
        # known only here, so no one follows it: every follower replays that write's events,
        # which are not published (observability/events.py).
        self._unseen = new
        self._next_seq = next_seq
        self._seq_lock = asyncio.Lock()
        # What closing a span needs from its opening, so that a close is one UPDATE.
        self._open_spans: dict[str, tuple[dt.datetime, dict[str, Any]]] = {}
        self.history = history
        self._closed_before: set[str] = set()  # steps of an earlier execution, finished there
        self._deferring: asyncio.Task | None = None  # the run's work task (see `defer_in`)
        self._deferred: list[Callable[[], Any] | RunEvent] = []
        self._carrying = False  # a write carrying deferred batches is on its way to the database

    @classmethod
    async def resume(cls, run: Run) -> RunRecorder:
        """A recorder adding events after the run's stored ones (a reaper's final event)."""
        last = await RunEvent.objects.filter(run=run).aaggregate(last=Max("seq"))
        return cls(run, next_seq=(last["last"] or 0) + 1)

    @classmethod
    def resumed(cls, run: Run, history: RunHistory) -> RunRecorder:
        """The recorder of a resumed execution of the run: its events follow the stored ones, its
        root span is the stored one, and the steps its replay enters again are their stored spans."""
        recorder = cls(run, next_seq=history.next_seq, history=history)
        recorder.span_track(history.root)
        return recorder

    def defer_in(self, task: asyncio.Task) -> None:
        """`task` executes the run's work: its batches with `defer` may wait (see the class doc)."""
        self._deferring = task

    @contextlib.asynccontextmanager
    async def batch(self, *, defer: bool = False, guard: Guard | None = None, lock: RowLock | None = None):
        """With `defer`, made by the work task: stored with its next write (see the class doc).
        With `guard`: it runs first in the batch's transaction (after the row `lock` is taken), and
        an error it returns means nothing of the batch is stored; the error is raised."""
        items: list[Callable[[], Any] | RunEvent] = []
        token = _current_batch.set((self, asyncio.current_task(), items))
        try:
            yield
        finally:
            _current_batch.reset(token)
        if defer and self._defers():
            self._deferred.extend(items)
            return
        await self._store(items, guard=guard, lock=lock)

    async def write(self, write: Callable[[], R], *, defer: bool = False) -> R | None:
        """One database write: now (its result), or with the current task's batch (None). With
        `defer`, made by the work task, it waits for the run's next write as a batch does (None)."""
        batch = self._current_batch()
        if batch is not None:
            batch.append(write)
            return None
        if defer and self._defers():
            self._deferred.append(write)
            return None
        if self._carries():
            return await self._store([write])
        return await ledger_write(write, keep=True)

    def _defers(self) -> bool:
        """Whether the current task is the run's work task, whose deferred writes may wait."""
        return self._deferring is not None and asyncio.current_task() is self._deferring

    def _carries(self) -> bool:
        """Whether a write made now goes through `_store`: deferred batches wait, or one carrying
        them is being stored (see the class doc)."""
        return bool(self._deferred) or self._carrying

    async def _store(self, items, *, guard: Guard | None = None, lock: RowLock | None = None) -> Any:
        """Stores `items` (writes and events, in order) in one ledger write, after the deferred
        batches it carries; numbers the events and publishes them once stored. Returns what the
        last write returned. A write that fails leaves no gap in seq, and what it carried waits
        for the next one."""
        async with self._seq_lock:
            carried, self._deferred = self._deferred, []
            self._carrying = bool(carried)
            items = [*carried, *items]
            events = [item for item in items if isinstance(item, RunEvent)]
            for offset, event in enumerate(events):
                event.seq = self._next_seq + offset
            writes = [functools.partial(row_insert, i) if isinstance(i, RunEvent) else i for i in items]
            try:
                refusal, result = await ledger_write(
                    functools.partial(_in_order, writes, guard), lock=lock, keep=guard is None
                )
            except BaseException:
                self._deferred[:0] = carried
                raise
            finally:
                self._carrying = False
            if refusal is not None:
                self._deferred[:0] = carried
                raise refusal
            self._next_seq += len(events)  # only once stored: a write that failed leaves no gap
            unseen, self._unseen = self._unseen, False
            if events and not unseen:
                # A cancel that came while the write was in its batch reaches this next await
                # (ledger_write): the events are stored, so followers are told of them first.
                await unbroken(self._publish(events))
            return result

    async def _publish(self, events: list[RunEvent]) -> None:
        await publish_run_events(self.run.pk, [event_frame(event) for event in events])

    def _current_batch(self) -> list[Callable[[], Any] | RunEvent] | None:
        current = _current_batch.get()
        if current is None or current[0] is not self or current[1] is not asyncio.current_task():
            return None
        return current[2]

    async def span_open(self, **opening) -> str:
        stored = self._step_stored(opening["kind"], opening.get("key"))
        if stored is not None:
            return stored
        span = self.span_new(**opening)
        await self.write(functools.partial(row_insert, span))
        return self.span_track(span)

    def _step_stored(self, kind: str, key: str | None) -> str | None:
        """The stored span of a step that a resumed run enters again (once), if there is one."""
        if self.history is None or kind != Span.Kind.PATTERN or key is None:
            return None
        span = self.history.steps.pop(key, None)
        if span is None:
            return None
        if span.ended_at is None:
            return self.span_track(span)  # it ends in this execution
        self._closed_before.add(span.pk)
        return span.pk

    def span_new(self, *, kind, name, parent_id, agent_id=None, attributes=None, key=None) -> Span:
        """An open span of this run, not stored yet (for a caller that stores it with writes of its
        own, in one transaction, then hands it to `span_track`)."""
        attributes = jsonable(dict(attributes or {}))
        span = Span(
            run_id=self.run.pk,
            organization_id=self.run.organization_id,
            parent_id=parent_id,
            kind=kind,
            name=name[:200],
            agent_id=agent_id or "",
            provider_id=attributes.pop("provider_id", "") or "",
            provider_kind=attributes.pop("provider_kind", ""),
            model=attributes.pop("model", ""),
            attributes=attributes,
            call_key=key or "",
        )
        return span

    def span_track(self, span: Span) -> str:
        """A stored open span that `span_close` will close; its id."""
        self._open_spans[span.pk] = (span.started_at, span.attributes)
        return span.pk

    async def span_close(self, span_id, **outcome) -> None:
        await self.write(self.span_closing(span_id, **outcome))

    def span_closing(
        self,
        span_id,
        *,
        status,
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal(0),
        attributes=None,
        error=None,
        output=None,
    ) -> Callable[[], Any]:
        """The write that closes a span with its outcome (`span_close` makes it at once). A step
        an earlier execution of the run finished stays as it was stored."""
        if span_id in self._closed_before:
            self._closed_before.discard(span_id)
            return _unchanged
        started_at, opened_with = self._open_spans.pop(span_id)
        ended_at = timezone.now()
        changes = {
            "ended_at": ended_at,
            "duration_ms": max(0, int((ended_at - started_at).total_seconds() * 1000)),
            "status": status,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "attributes": {**opened_with, **jsonable(dict(attributes or {}))},
            "error": error or "",
        }
        if output is not None:
            changes["output"] = jsonable(dict(output))
        return functools.partial(row_update, Span, span_id, **changes)

    async def emit(self, type, *, agent_id=None, data) -> None:
        if self.history is not None and not agent_id and self.history.replays_event(type, data):
            return
        event = RunEvent(run_id=self.run.pk, type=type, agent_id=agent_id or "", data=jsonable(dict(data)))
        batch = self._current_batch()
        if batch is not None:
            batch.append(event)  # numbered when the batch is stored
            return
        # Numbering, storing and publishing under one lock: concurrent agents' events reach the
        # group in seq order, which is what followers deduplicate by.
        await self._store([event])

    async def heartbeat(self) -> None:
        await self.write(functools.partial(row_update, Run, self.run.pk, heartbeat_at=timezone.now()))


def _unchanged() -> None:
    """The write of a span close that changes nothing."""


def _in_order(writes: list[Callable[[], Any]], guard: Guard | None = None) -> tuple[Exception | None, Any]:
    """The writes, in order, unless `guard` refuses: (its refusal or None, the last write's result)."""
    refusal = guard() if guard is not None else None
    if refusal is not None:
        return refusal, None
    result = None
    for write in writes:
        result = write()
    return None, result


def event_frame(event: RunEvent) -> dict[str, Any]:
    """The wire shape of an event (WebSocket frames and replays)."""
    return {
        "type": event.type,
        "run_id": event.run_id,
        "seq": event.seq,
        "agent_id": event.agent_id or None,
        "data": event.data,
        "timestamp": event.timestamp.isoformat(),
    }
