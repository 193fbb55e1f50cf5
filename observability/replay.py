"""Resuming a run whose process died, without paying twice for what it already did.

Every pattern step and agent call of a run is stored under a key, its place in the run, the same
on every execution given the same answers (`orchestrations.patterns.base`), and an agent call's
span keeps its output, tokens and cost (`Span.call_key`, `Span.output`). `run_resume` continues a
run from that record: in one transaction it frees the budget holds of the LLM calls in flight and
closes their spans and those of the agent calls around them as `interrupted`, counts the attempt,
and marks the run running again; then the work runs from the start with the record in its
recorder (`RunRecorder.resumed`). The engine's replay is deterministic, so the calls it meets
again are answered from the record (`agents.runtime.runner.replaying`: nothing called, paid or
emitted), the steps it enters again are their stored spans, the `pattern.step` events it emits
again are not stored twice, and only the calls that were in flight are made again. Events go on
from the next `seq` after a `run.resumed` event, so a follower sees one unbroken run.

A run whose executions keep dying (a poison input, a process killed every time) fails with
`run_attempts_exhausted` instead of its next attempt, after `settings.RUN_MAX_ATTEMPTS`
executions (STUDIO_RUN_MAX_ATTEMPTS, 3).

The ledger imports nothing above it, and budgets are the providers': `providers.budgets`
registers the hold release here (`hold_release_register`)."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from observability.models import Run, RunEvent, Span
from observability.recorder import RunHistory, RunRecorder
from observability.supervisor import (
    RunFailed,
    RunOutcome,
    Work,
    run_abandon,
    run_abandoned_announce,
    run_attempt,
    run_execute,
    run_paid,
)

INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "run interrupted: its process stopped, so the call is made again"
ATTEMPTS_EXHAUSTED = "run_attempts_exhausted"
# What a resumed run's replay reuses: steps still open or finished, agent calls that ended.
_STEP_REUSED = ("completed", "failed")
_CALL_RECORDED = ("completed", "failed")

# Frees the budget holds of a run's LLM calls in flight and closes their spans:
# (run_id, *, status, error) -> how many calls there were. Registered by providers.budgets.
HoldRelease = Callable[..., int]
_hold_release: list[HoldRelease] = []


def hold_release_register(release: HoldRelease) -> HoldRelease:
    """Registers how the holds of a run's LLM calls in flight are freed (see module doc)."""
    _hold_release[:] = [release]
    return release


@dataclass(frozen=True)
class _Claim:
    run: Run
    state: str  # fresh | finished | exhausted | resumed
    history: RunHistory | None = None
    interrupted_calls: int = 0


async def run_resume(run: Run, work: Work, *, name: str) -> tuple[Run, RunOutcome | None]:
    """Continues a stored run whose earlier execution stopped with its process (a worker killed
    mid-run whose job is retried), where it was; `work` is the run's work rebuilt as `run_start`
    got it, `name` its root span's name. Returns as `run_execute` does: (the finished run, its
    outcome), or raises RunFailed; the run's record is its own, so the caller must be sure its
    earlier execution is dead (a retried job's is).

    A run that never started is executed (`run_execute`); one already finished is returned as it
    is, with outcome None; one past `settings.RUN_MAX_ATTEMPTS` executions fails with
    `run_attempts_exhausted` (its final `run.failed` event stored) and RunFailed is raised."""
    claim = await sync_to_async(_run_claim)(run.pk)
    if claim.state == "fresh":
        return await run_execute(claim.run, work, name=name)
    if claim.state == "finished":
        return claim.run, None
    if claim.state == "exhausted":
        await run_abandoned_announce(claim.run)
        raise RunFailed(claim.run, ATTEMPTS_EXHAUSTED, claim.run.error["message"], 500)
    return await _continue(claim, work)


async def _continue(claim: _Claim, work: Work) -> tuple[Run, RunOutcome]:
    run, history = claim.run, claim.history
    recorder = RunRecorder.resumed(run, history)
    resumed = {
        "attempt": run.attempts,
        "replayed_calls": len(history.calls),
        "interrupted_calls": claim.interrupted_calls,
    }
    await recorder.emit("run.resumed", agent_id=run.agent_id or None, data=resumed)
    # Its execution time counts from its first start, like its followers saw it.
    started = time.perf_counter() - (timezone.now() - run.started_at).total_seconds()
    try:
        return await run_attempt(run, recorder, history.root.pk, _paid_in_full(work), started=started)
    finally:
        await sync_to_async(_close_unreached)(run.pk)


def _paid_in_full(work: Work) -> Work:
    """The work with the totals of what every execution of the run paid for: the LLM calls it
    replayed, the ones it made, and those an execution that died had finished inside a call it
    did not finish (they were paid, though their answer is lost)."""

    async def resumed_work(recorder, root_span_id) -> RunOutcome:
        outcome = await work(recorder, root_span_id)
        input_tokens, output_tokens, cost = await run_paid(recorder)
        return dataclasses.replace(
            outcome, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost
        )

    return resumed_work


def _run_claim(run_id: str) -> _Claim:
    """Takes the run for a new execution, in one transaction under its row lock."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status in Run.FINISHED:
            return _Claim(run, "finished")
        if run.attempts == 0:
            return _Claim(run, "fresh")
        if run.status == Run.Status.WAITING:  # decided: not an attempt of a process that died
            run.status, run.heartbeat_at = Run.Status.RUNNING, timezone.now()
            run.save(update_fields=["status", "heartbeat_at"])
            return _Claim(run, "resumed", _history(run), _interrupt_in_flight(run))
        interrupted = _interrupt_in_flight(run)
        if run.attempts >= settings.RUN_MAX_ATTEMPTS:
            message = (
                f"The run was interrupted on each of its {run.attempts} attempts (its process "
                "stopped), so it is not tried again."
            )
            run_abandon(run, {"code": ATTEMPTS_EXHAUSTED, "message": message})
            return _Claim(run, "exhausted")
        run.attempts += 1
        run.status, run.heartbeat_at = Run.Status.RUNNING, timezone.now()
        run.save(update_fields=["attempts", "status", "heartbeat_at"])
        return _Claim(run, "resumed", _history(run), interrupted)


def _interrupt_in_flight(run: Run) -> int:
    """Frees the holds of the LLM calls in flight and closes every open call span as interrupted
    (an agent call's with what its finished LLM calls cost); how many agent calls there were."""
    if not _hold_release:
        raise RuntimeError("No hold release is registered (providers.budgets registers it on import).")
    _hold_release[0](run.pk, status=INTERRUPTED, error=INTERRUPTED_ERROR)
    spans = list(run.spans.all())
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    now = timezone.now()
    in_flight = [s for s in spans if s.ended_at is None and s.kind in (Span.Kind.AGENT, Span.Kind.TOOL)]
    for span in in_flight:
        paid = [s for s in _descendants(span, children) if s.kind == Span.Kind.LLM]
        span.input_tokens = sum(s.input_tokens for s in paid)
        span.output_tokens = sum(s.output_tokens for s in paid)
        span.cost_usd = sum((s.cost_usd for s in paid), Decimal(0))
        span.status, span.error, span.ended_at = INTERRUPTED, INTERRUPTED_ERROR, now
        span.duration_ms = max(0, int((now - span.started_at).total_seconds() * 1000))
    fields = ["input_tokens", "output_tokens", "cost_usd", "status", "error", "ended_at", "duration_ms"]
    Span.objects.bulk_update(in_flight, fields)
    return sum(1 for span in in_flight if span.kind == Span.Kind.AGENT)


def _descendants(span: Span, children: dict[str | None, list[Span]]) -> list[Span]:
    found, pending = [], list(children.get(span.pk, ()))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child.pk, ()))
    return found


def _history(run: Run) -> RunHistory:
    """The record a resumed execution continues from (see `RunHistory`). Later spans of a key
    win: a call made again after an interruption is the one that counts."""
    spans = list(run.spans.order_by("started_at", "id"))
    root = next(span for span in spans if span.kind == Span.Kind.RUN and span.parent_id is None)
    steps = {
        span.call_key: span
        for span in spans
        if span.kind == Span.Kind.PATTERN
        and span.call_key
        and (span.ended_at is None or span.status in _STEP_REUSED)
    }
    calls = {
        span.call_key: span
        for span in spans
        if span.kind == Span.Kind.AGENT and span.call_key and span.status in _CALL_RECORDED
    }
    events = RunEvent.objects.filter(run=run).order_by("seq")
    step_events = deque(
        (event.type, event.data) for event in events.filter(agent_id="").exclude(type__startswith="run.")
    )
    last = events.aggregate(last=Max("seq"))["last"] or 0
    return RunHistory(next_seq=last + 1, root=root, steps=steps, calls=calls, step_events=step_events)


def _close_unreached(run_id: str) -> None:
    """Steps of earlier executions that a finished resumed run did not enter again (its replay
    went another way) end as interrupted; a run handed back keeps them for its next execution."""
    if not Run.objects.filter(pk=run_id, status__in=Run.FINISHED).exists():
        return
    now = timezone.now()
    Span.objects.filter(run_id=run_id, ended_at__isnull=True).update(
        status=INTERRUPTED, ended_at=now, error=INTERRUPTED_ERROR
    )
