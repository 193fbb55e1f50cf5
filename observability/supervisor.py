"""Writes of the execution ledger: creating runs and driving them to a final state."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from observability import metrics
from observability.limits import run_admission_lock, run_admission_refusal
from observability.loops import loop_local
from observability.models import Run
from observability.recorder import RunRecorder, jsonable
from observability.rows import row_insert, row_update
from observability.signals import run_finished_announce
from studio.background import spawn
from studio.errors import CodedError, WorkDeclined, WorkPaused, internal_error, paused_in

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 10.0
CANCEL_POLL_S = 0.5
# A running run whose heartbeat is this old belongs to a dead process: three missed beats (one
# late beat on a loaded machine is not death). See `providers.reaping`.
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S

# Runs executing in this process, so that a cancel arriving here can reach them directly; a
# cancel arriving at another process is passed on through the cache (see `_watch`).
_active_runs: dict[str, asyncio.Task] = {}  # run id -> the task doing its work
_cancel_requested: set[str] = set()
_handing_back: set[str] = set()  # runs whose work stops here to go on elsewhere (`run_hand_back`)


@dataclass(frozen=True)
class RunOutcome:
    """What a run's work produced (engine results are converted to this)."""

    output: Mapping[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    extra: Mapping[str, Any] = field(default_factory=dict)


class RunHandedBack(Exception):  # noqa: N818 (it is no error: the run goes on elsewhere)
    """Raised by `run_execute` when `run_hand_back` stopped the run's work in this process: the run
    is `queued` again, unfinished, for a worker to resume."""


class RunFailed(CodedError):
    """Raised by `run_execute` after the run was recorded as failed (or cancelled)."""

    def __init__(self, run: Run, code: str, message: str, status: int):
        super().__init__(
            message, code=code, status=status, fields={"run_id": run.pk, "trace_id": run.trace_id}
        )
        self.run = run


class RunWaiting(CodedError):
    """Raised by `run_execute` when the run's work paused for a person's decision (an approval):
    the run is `waiting`, its execution over; the decision resumes it (`orchestrations.approvals`).
    Callers answer 202 with the run's status and where to follow it."""

    status = 202
    code = "run_waiting"

    def __init__(self, run: Run, paused: WorkPaused | None = None):
        data = paused.data if paused is not None else {}
        super().__init__(
            "The run is waiting for a person's approval; it goes on once someone decides.",
            fields={"run_id": run.pk, "trace_id": run.trace_id, "status": Run.Status.WAITING, **data},
        )
        self.run = run
        self.approval_id = data.get("approval_id")

    def summary(self, *, follow_url: str | None = None) -> dict[str, Any]:
        """The 202 body of a call whose run waits: its status, and where to follow and decide it."""
        return {
            "run_id": self.run.pk,
            "trace_id": self.run.trace_id,
            "status": Run.Status.WAITING,
            "approval_id": self.approval_id,
            "approval_url": f"/api/approvals/{self.approval_id}" if self.approval_id else None,
            "follow_url": follow_url or f"/api/runs/{self.run.pk}/stream",
        }


@dataclass(frozen=True)
class RunDraft:
    """A run about to start: what `run_start` admits and stores."""

    organization_id: str
    user_id: str | None
    kind: str
    input: Mapping[str, Any]
    agent_id: str = ""
    orchestration_id: str = ""
    deployment_id: str = ""
    finished_hook: Mapping[str, Any] | None = None  # stored by `run_start` (see Run.finished_hook)

    def run(self, **state: Any) -> Run:
        """The run's row (unsaved), in `state` (status, timestamps) where given."""
        return Run(**{**asdict(self), "input": dict(self.input)}, **state)


Work = Callable[[RunRecorder, str], Awaitable[RunOutcome]]
Finished = Callable[[RunFailed | None], None]


async def run_start(
    draft: RunDraft,
    work: Work,
    *,
    name: str,
    background: bool = False,
    on_finished: Finished | None = None,
    stream: bool = False,
) -> tuple[Run, RunOutcome | None]:
    """The one way a run starts, whatever the channel (REST, WebSocket, deployments, MCP): stores
    the draft if its organization is under its cap of runs in progress (RunLimitReached otherwise,
    nothing stored), then executes `work` as the run. Awaited here by default: the finished run and
    its outcome, or RunFailed. With `background`, executed on its own (it goes on when its client
    leaves) and the stored run returned at once (outcome None). Either way `on_finished` learns how
    the run ended; a run that waits for an approval ends in another execution, which applies the
    hook its row keeps (a `finished_hook`: a closure is not kept).

    With `STUDIO_EXECUTION=queue` the run is a job instead (`observability.queue`): a worker
    rebuilds `work` from the stored run (`stream`: whether it streams the model's text), and
    `on_finished` must be a `finished_hook` the worker can apply; awaited, this waits for the
    run's end and answers the same."""
    from observability.queue import finished_kept, run_completion, run_enqueue  # it imports this module

    if settings.EXECUTION == "queue":
        run = await sync_to_async(run_enqueue)(draft, name=name, stream=stream, on_finished=on_finished)
        return (run, None) if background else await run_completion(run)
    started = time.perf_counter()
    draft = replace(draft, finished_hook=finished_kept(on_finished))
    run, recorder, root = await _run_open(draft, name)
    execution = functools.partial(run_attempt, run, recorder, root, work, started=started)
    if background:
        spawn(_quietly, execution, on_finished, name=f"run {run.pk}")
        return run, None
    return await _reporting(execution, on_finished)


async def _run_open(draft: RunDraft, name: str) -> tuple[Run, RunRecorder, str]:
    """Admits and starts the draft in one ledger write: under its organization's lock, the count
    of its runs in progress (RunLimitReached at the cap, nothing stored), the run stored running,
    its root span and `run.started`."""
    now = timezone.now()
    run = draft.run(status=Run.Status.RUNNING, started_at=now, heartbeat_at=now, attempts=1)
    recorder = RunRecorder(run, new=True)
    admission = functools.partial(run_admission_refusal, run.organization_id)
    async with recorder.batch(guard=admission, lock=run_admission_lock(run.organization_id)):
        await recorder.write(functools.partial(row_insert, run))
        root = await _root_open(run, recorder, name)
    return run, recorder, root


async def _root_open(run: Run, recorder: RunRecorder, name: str) -> str:
    root = await recorder.span_open(kind="run", name=name, parent_id=None, agent_id=run.agent_id or None)
    started = {"kind": run.kind, "input": run.input}
    await recorder.emit("run.started", agent_id=run.agent_id or None, data=started)
    return root


async def _execute_reporting(
    run: Run, work: Work, name: str, on_finished: Finished | None
) -> tuple[Run, RunOutcome]:
    """`run_execute` of a stored run, then `on_finished` as `_reporting` says."""
    return await _reporting(functools.partial(run_execute, run, work, name=name), on_finished)


async def _reporting(
    execution: Callable[[], Awaitable[tuple[Run, RunOutcome]]], on_finished: Finished | None
) -> tuple[Run, RunOutcome]:
    """The run's execution, then `on_finished(None or the RunFailed)`: not when its task is
    cancelled or the run waits, nor for a run that had ended before (a resume's outcome None)."""
    try:
        executed = await execution()
    except RunFailed as failed:
        if on_finished is not None:
            on_finished(failed)
        raise
    if on_finished is not None and executed[1] is not None:
        on_finished(None)
    return executed


async def run_execute(run: Run, work: Work, *, name: str) -> tuple[Run, RunOutcome]:
    """Runs `work(recorder, root_span_id)` as the stored run (see `run_start`): marks it running,
    keeps its heartbeat fresh, and always ends it completed, failed or cancelled, with a final
    event. Raises RunFailed (code `cancelled` when `run_cancel` stopped it)."""
    recorder = RunRecorder(run)
    started = time.perf_counter()
    async with recorder.batch():
        await _mark_running(run, recorder)
        root = await _root_open(run, recorder, name)
    return await run_attempt(run, recorder, root, work, started=started)


async def run_attempt(
    run: Run, recorder: RunRecorder, root: str, work: Work, *, started: float
) -> tuple[Run, RunOutcome]:
    """One execution of a run already marked running, under its root span: its first one
    (`run_execute`) or a resumed one (`observability.replay.run_resume`); `started` is the
    perf_counter time its execution time counts from. Ends the run as `run_execute` says."""
    # The work runs in its own task, so a cancel stops the work while this coroutine records it.
    work_task = asyncio.create_task(work(recorder, root))
    recorder.defer_in(work_task)  # an agent of the work task ends with the run, in one write
    _active_runs[run.pk] = work_task
    watcher = asyncio.create_task(_watch(recorder, work_task))
    try:
        outcome = await work_task
    except asyncio.CancelledError:
        if run.pk in _handing_back:
            await _requeue(run, recorder)
            raise RunHandedBack(run.pk) from None
        error = {"code": "cancelled", "message": "The run was cancelled."}
        await _finish(run, recorder, root, started, status=Run.Status.CANCELLED, error=error)
        if asyncio.current_task().cancelling():
            raise
        raise RunFailed(run, error["code"], error["message"], 409) from None
    except Exception as exc:
        paused = paused_in(exc)
        if paused is not None:
            await _pause(run, recorder, paused)
            raise RunWaiting(run, paused) from None
        if isinstance(exc, WorkDeclined):  # a person said no: cancelled, with their reason
            error = {"code": exc.code, "message": exc.message}
            await _finish(run, recorder, root, started, status=Run.Status.CANCELLED, error=error)
            raise RunFailed(run, exc.code, exc.message, exc.status) from exc
        code, message, status = _describe_failure(exc)
        error = {"code": code, "message": message}
        await _finish(run, recorder, root, started, status=Run.Status.FAILED, error=error, http_status=status)
        raise RunFailed(run, code, message, status) from exc
    finally:
        watcher.cancel()
        _active_runs.pop(run.pk, None)
        _cancel_requested.discard(run.pk)
        _handing_back.discard(run.pk)
    await _finish(run, recorder, root, started, status=Run.Status.COMPLETED, outcome=outcome)
    return run, outcome


def _describe_failure(exc: Exception) -> tuple[str, str, int]:
    """The code, message and status of a failed run. Clients learn of an unexpected exception only
    an error id; its detail goes to the server log under that id."""
    error = exc if isinstance(exc, CodedError) else internal_error(exc, what="The run")
    return error.code, error.message, error.status


async def _mark_running(run: Run, recorder: RunRecorder) -> None:
    now = timezone.now()
    run.status, run.started_at, run.heartbeat_at, run.attempts = Run.Status.RUNNING, now, now, 1
    running = {"status": run.status, "started_at": now, "heartbeat_at": now, "attempts": 1}
    await recorder.write(functools.partial(row_update, Run, run.pk, **running))


async def _requeue(run: Run, recorder: RunRecorder) -> None:
    """A run handed back: `queued` again, its heartbeat cleared, its spans and events kept."""
    run.status, run.heartbeat_at = Run.Status.QUEUED, None
    await recorder.write(functools.partial(row_update, Run, run.pk, status=run.status, heartbeat_at=None))


async def _pause(run: Run, recorder: RunRecorder, paused: WorkPaused) -> None:
    """A run whose work waits for a person: `waiting`, no heartbeat (no process holds it, and the
    reaper leaves it alone), its root span open for the execution that resumes it."""
    run.status, run.heartbeat_at = Run.Status.WAITING, None
    await recorder.write(functools.partial(row_update, Run, run.pk, status=run.status, heartbeat_at=None))
    await recorder.emit(
        "run.waiting", agent_id=run.agent_id or None, data={"status": run.status, **paused.data}
    )


def run_hand_back(run_id: str) -> bool:
    """Stops the run's work in this process without finishing the run (a worker shutting down):
    `run_execute` records it `queued` again and raises RunHandedBack. False if it is not here."""
    task = _active_runs.get(run_id)
    if task is None:
        return False
    _handing_back.add(run_id)
    task.get_loop().call_soon_threadsafe(task.cancel)
    return True


async def _quietly(execution: Callable[[], Awaitable[tuple[Run, RunOutcome]]], on_finished: Finished | None):
    """A run executed in the background: it goes on (and is recorded) when the client that
    started it goes away."""
    with contextlib.suppress(RunFailed, RunWaiting, asyncio.CancelledError):
        await _reporting(execution, on_finished)


def _cancel_key(run_id: str) -> str:
    return f"run-cancel:{run_id}"


QUEUED_CANCEL_TTL_S = 24 * 3600


def run_cancel_requested(run_id: str) -> bool:
    """Whether a cancel of the run is waiting for the process that will execute it (cache down: no)."""
    try:
        return bool(cache.get(_cancel_key(run_id)))
    except Exception:
        return False


# Cancels a run that waits for a person (no process holds it, so none can stop it): `(run_id) ->
# bool`, False when it is not waiting. Registered by orchestrations.approvals, whose it is.
_waiting_cancel: list[Callable[[str], bool]] = []


def waiting_cancel_register(cancel: Callable[[str], bool]) -> Callable[[str], bool]:
    """Registers how `run_cancel` ends a waiting run (see `_waiting_cancel`)."""
    _waiting_cancel[:] = [cancel]
    return cancel


def run_cancel(run: Run) -> bool:
    """Asks a running run to stop (here or in whichever process executes it), or ends a waiting
    one; False when it has already finished."""
    if run.status in Run.FINISHED:
        return False
    task = _active_runs.get(run.pk)
    if task is not None:
        _cancel_requested.add(run.pk)
        task.get_loop().call_soon_threadsafe(task.cancel)
        return True
    if _waiting_cancel and _waiting_cancel[0](run.pk):
        return True
    # A run still queued (a job no worker took yet) may start long after: its flag waits for it.
    timeout = QUEUED_CANCEL_TTL_S if run.status == Run.Status.QUEUED else int(STALE_AFTER_S)
    try:
        cache.set(_cancel_key(run.pk), 1, timeout=timeout)
    except Exception:
        logger.warning("Cannot pass the cancel of %s to its process (cache down)", run.pk, exc_info=True)
        return False
    return True


async def _watch(recorder: RunRecorder, work_task: asyncio.Task) -> None:
    """Refreshes the heartbeat, and cancels the work once a cancel was requested (here, or in the
    cache by another process: see `_CancelPoller`). The cancel is repeated until it lands: a cancel
    arriving during a database call is absorbed by asgiref's sync_to_async."""
    run_id = recorder.run.pk
    beats_every = int(HEARTBEAT_INTERVAL_S / CANCEL_POLL_S)
    poller = _cancel_poller()
    poller.watch(run_id)
    try:
        for tick in itertools.count(1):
            await asyncio.sleep(CANCEL_POLL_S)
            if run_id in _cancel_requested:
                work_task.cancel()
            if tick % beats_every == 0:
                try:
                    await recorder.heartbeat()
                except Exception:
                    logger.warning("Heartbeat of %s failed", run_id, exc_info=True)
    finally:
        poller.unwatch(run_id)


class _CancelPoller:
    """Reads the cancel flags of every run an event loop executes with one cache read per poll,
    instead of one read (and one thread hop) per run; runs flagged are marked cancel-requested."""

    def __init__(self) -> None:
        self.run_ids: set[str] = set()
        self.task: asyncio.Task | None = None

    def watch(self, run_id: str) -> None:
        self.run_ids.add(run_id)
        if self.task is None:
            self.task = asyncio.create_task(self._poll())

    def unwatch(self, run_id: str) -> None:
        self.run_ids.discard(run_id)
        if not self.run_ids and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            keys = {_cancel_key(run_id): run_id for run_id in self.run_ids}
            try:
                flagged = await cache.aget_many(list(keys))
            except Exception:  # cache down: only cancels arriving at this process can stop runs
                logger.debug("Cannot read cancel flags", exc_info=True)
                continue
            _cancel_requested.update(keys[key] for key, value in flagged.items() if value)


_cancel_poller = loop_local(_CancelPoller)


async def _finish(
    run, recorder, root, started, *, status, outcome: RunOutcome | None = None, error=None, http_status=None
):
    """Ends the run, its root span and its event stream together (one transaction). A failure's
    event carries the HTTP status of its error, for callers that wait on the event (a queued run)."""
    run.status = status
    run.completed_at = timezone.now()
    run.execution_time_ms = int((time.perf_counter() - started) * 1000)
    if outcome is not None:
        run.output = jsonable(outcome.output)
        run.input_tokens, run.output_tokens, run.cost_usd = (
            outcome.input_tokens,
            outcome.output_tokens,
            outcome.cost_usd,
        )
    else:
        run.input_tokens, run.output_tokens, run.cost_usd = await run_paid(recorder)
    run.error = error
    data = {
        "status": status,
        "execution_time_ms": run.execution_time_ms,
        "tokens": {"input": run.input_tokens, "output": run.output_tokens, "total": run.total_tokens},
        "cost_usd": run.cost_usd,
    }
    async with recorder.batch():
        finished = {name: getattr(run, name) for name in FINISH_FIELDS}
        await recorder.write(functools.partial(row_update, Run, run.pk, **finished))
        await recorder.span_close(
            root,
            status=status,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost_usd=run.cost_usd,
            error=(error or {}).get("message"),
        )
        if outcome is not None:
            await recorder.emit("run.completed", data={**data, "output": run.output, **outcome.extra})
        else:
            failure = {"http_status": http_status} if http_status else {}
            await recorder.emit("run.failed", data={**data, "error": error, **failure})
    metrics.run_finished(kind=run.kind, status=status, execution_time_ms=run.execution_time_ms)
    await run_finished_announce(run)  # stored for good: outbound webhooks may send it


FINISH_FIELDS = [
    "status",
    "completed_at",
    "execution_time_ms",
    "output",
    "error",
    "input_tokens",
    "output_tokens",
    "cost_usd",
]


async def run_paid(recorder: RunRecorder) -> tuple[int, int, Decimal]:
    """`_span_totals` of the recorder's run, read as a write of the run (after the settlements
    still waiting for its next write, see providers.gateway)."""
    return await recorder.write(functools.partial(_span_totals, recorder.run))


def _span_totals(run: Run) -> tuple[int, int, Decimal]:
    """Tokens and cost of the LLM calls a failed run did make (they were paid for)."""
    totals = run.spans.filter(kind="llm").aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd")
    )
    return totals["i"] or 0, totals["o"] or 0, totals["c"] or Decimal(0)


def runs_stale(*, now=None):
    """Unfinished runs whose process stopped refreshing their heartbeat (or never started them)."""
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=STALE_AFTER_S)
    return Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )


def runs_active_here() -> frozenset[str]:
    """Ids of the runs this process is executing (alive, whatever their heartbeat says)."""
    return frozenset(_active_runs)


ABANDONED = {"code": "run_abandoned", "message": "The process executing this run stopped."}


def run_abandon(run: Run, error: Mapping[str, str] = ABANDONED) -> None:
    """Records a run whose process died as failed (`error`, by default run_abandoned): its open
    spans are closed as failed and its totals are those of the calls it did make. Call it inside
    the transaction that claimed the run (see `providers.reaping`), then announce it with
    `run_abandoned_announce`."""
    assert transaction.get_connection().in_atomic_block, "run_abandon belongs in the claiming transaction"
    now = timezone.now()
    run.spans.filter(ended_at__isnull=True).update(status="failed", ended_at=now, error="run abandoned")
    run.input_tokens, run.output_tokens, run.cost_usd = _span_totals(run)
    run.status, run.completed_at = Run.Status.FAILED, now
    run.error = dict(error)
    run.save(update_fields=["status", "completed_at", "error", "input_tokens", "output_tokens", "cost_usd"])


async def run_abandoned_announce(run: Run) -> None:
    """The final event of an abandoned run, after the ones already stored, so followers see it end."""
    recorder = await RunRecorder.resume(run)
    metrics.run_finished(kind=run.kind, status=run.status, execution_time_ms=None)
    await recorder.emit(
        "run.failed", agent_id=run.agent_id or None, data={"status": run.status, "error": run.error}
    )
    await run_finished_announce(run)
