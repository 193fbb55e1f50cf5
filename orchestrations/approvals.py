"""Human approval, durable: runs that wait for a person's decision without holding a process.

An MCP tool call marked `requires_approval` and an orchestration step marked for approval ask the
run's gate (`RunApprovalGate`, the engine's `agents.runtime.approvals`). The first time, the gate
stores a pending Approval under the request's key, emits `approval.requested` and raises
WorkPaused: the supervisor records the run `waiting` and its execution ends (its job, queued; its
task, inline). `approval_decide` (POST /api/approvals/{id}) or `approvals_expire` (the periodic
check of overdue ones) records the decision, emits `approval.resolved` and resumes the run
(`observability.replay.run_resume`: inline, in this process in the background; queued, a new job of
the run on any worker). The replay reaches the same request again and the gate answers it by key.

The spans the pause closed `waiting` (the tool call, the agent call and the step around it) become
`paused` once the run goes on or ends: their calls are made again by the resumed execution (an
agent's turns given again from the paused span), so no span of a run that is not waiting says it
waits.

A waiting run is cancelled (`run_cancel`: the WebSocket `cancel` frame) by `run_waiting_cancel`:
in one transaction under the run's lock its pending approvals become `cancelled` (a later decision
is a 409), the holds of its calls are freed, its open spans end `cancelled` and the run ends
`cancelled`; then `approval.resolved` for each approval and the run's final `run.failed`, with
their webhooks. Ended under the lock, the run cannot also be resumed by a decision made meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.runtime.approvals import ApprovalDecision, ApprovalRequest, approval_gate_register
from observability.loops import loop_local
from observability.models import Run, Span
from observability.queue import finished_load, queue_enabled
from observability.recorder import RunRecorder, jsonable
from observability.signals import ledger_event_asend
from observability.supervisor import (
    RunFailed,
    RunWaiting,
    _reporting,
    _span_totals,
    run_abandoned_announce,
    waiting_cancel_register,
)
from orchestrations.models import Approval
from studio.api.errors import ApiError
from studio.audit import audit_record
from studio.background import every, spawn
from studio.errors import WorkPaused

logger = logging.getLogger(__name__)

EXPIRED_COMMENT = "Nobody decided within the approval's timeout."
CANCELLED_COMMENT = "The run was cancelled while it waited for this decision."
RUN_CANCELLED = {"code": "cancelled", "message": "The run was cancelled."}
WAITING, PAUSED = "waiting", "paused"  # span statuses: while the run waits, and once it goes on
SETTLE_WAIT_S = 5.0


class RunApprovalGate:
    """The approvals of one run, as its engine asks them (see the module doc)."""

    def __init__(self, recorder: RunRecorder):
        self.recorder = recorder
        self.run = recorder.run

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        approval, created = await sync_to_async(_approval_get_or_create)(self.run, request)
        if created:
            await self.recorder.emit(
                "approval.requested",
                agent_id=request.subject.get("agent_id") or None,
                data=approval_event_data(approval),
            )
            await _announce("approval.requested", approval)
        if approval.status == Approval.Status.PENDING:
            raise WorkPaused("approval", {"approval_id": approval.pk, "kind": approval.kind})
        return ApprovalDecision(
            approval_id=approval.pk,
            status=approval.status,
            comment=approval.comment,
            decided_by=approval.decided_by_id,
            extra={"on_timeout": approval.on_timeout},
        )

    async def recorded_tool(self, key: str) -> str | None:
        if getattr(self.recorder, "history", None) is None:
            return None  # a first execution has made no tool call yet
        return await sync_to_async(_tool_result)(self.run.pk, key)

    async def recorded_turns(self, key: str) -> list[dict[str, Any]]:
        if getattr(self.recorder, "history", None) is None:
            return []
        return await sync_to_async(_paused_turns)(self.run.pk, key)


def _gate_of(recorder: Any) -> RunApprovalGate | None:
    run = getattr(recorder, "run", None)
    return RunApprovalGate(recorder) if isinstance(run, Run) else None


approval_gate_register(_gate_of)


def _approval_get_or_create(run: Run, request: ApprovalRequest) -> tuple[Approval, bool]:
    found = Approval.objects.filter(run_id=run.pk, key=request.key).first()
    if found is not None:
        return found, False
    timeout_s = request.timeout_s or settings.APPROVAL_TIMEOUT_S or None
    expires_at = timezone.now() + dt.timedelta(seconds=timeout_s) if timeout_s else None
    try:
        with transaction.atomic():
            approval = Approval.objects.create(
                organization_id=run.organization_id,
                run_id=run.pk,
                key=request.key[:400],
                kind=request.kind,
                subject=dict(request.subject),
                on_timeout=request.on_timeout,
                expires_at=expires_at,
            )
    except IntegrityError:  # asked concurrently under the same key: the stored one counts
        return Approval.objects.get(run_id=run.pk, key=request.key), False
    return approval, True


def _paused_turns(run_id: str, key: str) -> list[dict[str, Any]]:
    """The turns of the agent call under `key` that paused last (see agents.runtime.runner)."""
    span = (
        Span.objects.filter(run_id=run_id, kind=Span.Kind.AGENT, call_key=key, status__in=(WAITING, PAUSED))
        .order_by("-started_at")
        .first()
    )
    return list((span.output or {}).get("turns", [])) if span is not None else []


def _tool_result(run_id: str, key: str) -> str | None:
    span = (
        Span.objects.filter(run_id=run_id, kind=Span.Kind.TOOL, call_key=key, status="completed")
        .order_by("-started_at")
        .first()
    )
    if span is None:
        return None
    result = span.attributes.get("result")
    return result if isinstance(result, str) else None


def approval_event_data(approval: Approval) -> dict[str, Any]:
    """What `approval.*` events and webhooks say about an approval."""
    return {
        "approval_id": approval.pk,
        "run_id": approval.run_id,
        "kind": approval.kind,
        "subject": approval.subject,
        "status": approval.status,
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        "decided_by": approval.decided_by_id,
        "comment": approval.comment,
    }


async def _announce(event: str, approval: Approval) -> None:
    """The event for outbound webhooks (`observability.signals`), as run.completed is sent; a
    webhook is no reason for the run to stop."""
    try:
        await ledger_event_asend(
            organization_id=approval.organization_id,
            event=event,
            data=jsonable(approval_event_data(approval)),
        )
    except Exception:
        logger.warning("Announcing %s of %s failed", event, approval.pk, exc_info=True)


# --- decisions ---------------------------------------------------------------------------------

DECISIONS = {"approve": Approval.Status.APPROVED, "reject": Approval.Status.REJECTED}


def approval_decide(*, user, approval: Approval, decision: str, comment: str = "") -> Approval:
    """Records a person's decision (409 `approval_decided` when it was already decided or expired),
    audited with the decider, then announces it and resumes the run (see the module doc)."""
    with transaction.atomic():
        locked = Approval.objects.select_for_update().get(pk=approval.pk)
        if locked.status != Approval.Status.PENDING:
            raise ApiError(
                409,
                "approval_decided",
                f"This approval is already {locked.status}.",
                fields={"status": locked.status},
            )
        status = DECISIONS[decision]
        _approval_close(
            locked,
            status,
            comment,
            by=user,
            at=timezone.now(),
            operation=f"approval_{decision}",
            changes={"run_id": locked.run_id, "kind": locked.kind, "status": status, "comment": comment},
        )
    from providers.aio import run_sync

    run_sync(approval_resolved, locked)
    return locked


def _approval_close(
    approval: Approval, status: str, comment: str, *, at, operation: str, changes, by=None
) -> None:
    """Ends a pending approval (a person's decision `by` them, or the system's: expired, cancelled)
    with its audit row; in the caller's transaction, the approval locked."""
    approval.status, approval.comment, approval.decided_by, approval.decided_at = status, comment, by, at
    approval.save(update_fields=["status", "comment", "decided_by", "decided_at"])
    audit_record(
        actor=by,
        organization_id=approval.organization_id,
        operation=operation,
        instance=approval,
        changes=changes,
    )


async def approvals_expire(*, now=None) -> list[Approval]:
    """Expires the pending approvals past their deadline (each once, whichever process gets it
    first) and resumes their runs: the policy (`on_timeout`) then rejects the call or step, or
    fails the run."""
    expired = await sync_to_async(_expire_due)(now or timezone.now())
    for approval in expired:
        await approval_resolved(approval)
    return expired


def _expire_due(now) -> list[Approval]:
    due = Approval.objects.filter(status=Approval.Status.PENDING, expires_at__lte=now)
    expired = []
    for approval_id in list(due.values_list("pk", flat=True)[:100]):
        with transaction.atomic():
            locked = (
                Approval.objects.select_for_update(skip_locked=True)
                .filter(pk=approval_id, status=Approval.Status.PENDING)
                .first()
            )
            if locked is None:
                continue
            _approval_close(
                locked,
                Approval.Status.EXPIRED,
                EXPIRED_COMMENT,
                at=now,
                operation="approval_expire",
                changes={"run_id": locked.run_id, "on_timeout": locked.on_timeout},
            )
        expired.append(locked)
    return expired


async def approval_resolved(approval: Approval) -> None:
    """`approval.resolved` on the run's stream (and webhooks), then the run goes on: unless another
    of its approvals is still pending (its replay would only stop there again). Both wait for the
    run's execution to have recorded its pause (`_settled`): its events are numbered by it until
    then, and a run still running cannot be resumed."""
    run = await _settled(await Run.objects.aget(pk=approval.run_id))
    recorder = await RunRecorder.resume(run)
    agent_id = approval.subject.get("agent_id") or None
    await recorder.emit("approval.resolved", agent_id=agent_id, data=approval_event_data(approval))
    await _announce("approval.resolved", approval)
    pending = Approval.objects.filter(run_id=run.pk, status=Approval.Status.PENDING)
    if run.status == Run.Status.WAITING and not await pending.aexists():
        await spans_unpause(run.pk)
        await run_continue(run)


async def spans_unpause(run_id: str) -> None:
    """The spans the run's pause closed `waiting`, `paused` (see the module doc)."""
    await Span.objects.filter(run_id=run_id, status=WAITING).aupdate(status=PAUSED)


async def _settled(run: Run) -> Run:
    """The run once its execution has recorded the pause: a decision made the instant the approval
    was asked may come before the run is `waiting` (its execution still ending), and must not be
    lost. Briefly: an execution ends within milliseconds of asking."""
    for _ in range(int(SETTLE_WAIT_S / 0.05)):
        if run.status != Run.Status.RUNNING:
            break
        await asyncio.sleep(0.05)
        run = await Run.objects.aget(pk=run.pk)
    return run


# --- cancelling a waiting run -------------------------------------------------------------------


def run_waiting_cancel(run_id: str) -> bool:
    """Ends a waiting run cancelled (see the module doc); False when it is not waiting, or waits no
    more for anyone (decided: its resume is on the way, and is cancelled the usual way)."""
    ended = _waiting_run_end(run_id)
    if ended is None:
        return False
    from providers.aio import run_sync

    run_sync(_waiting_run_ended, *ended)
    return True


waiting_cancel_register(run_waiting_cancel)


def _waiting_run_end(run_id: str) -> tuple[Run, list[Approval]] | None:
    from providers.budgets import budget_release_run

    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, status=Run.Status.WAITING).first()
        if run is None:
            return None
        pending = Approval.objects.select_for_update().filter(run_id=run_id, status=Approval.Status.PENDING)
        approvals = list(pending.order_by("created_at"))
        if not approvals:
            return None
        now = timezone.now()
        for approval in approvals:
            _approval_close(
                approval,
                Approval.Status.CANCELLED,
                CANCELLED_COMMENT,
                at=now,
                operation="approval_cancel",
                changes={"run_id": run_id, "status": Approval.Status.CANCELLED},
            )
        budget_release_run(run_id, status=Run.Status.CANCELLED, error="cancelled")
        Span.objects.filter(run_id=run_id, status=WAITING).update(status=PAUSED)
        run.input_tokens, run.output_tokens, run.cost_usd = _span_totals(run)
        open_spans = run.spans.filter(ended_at__isnull=True)
        open_spans.filter(kind=Span.Kind.RUN, parent_id=None).update(
            input_tokens=run.input_tokens, output_tokens=run.output_tokens, cost_usd=run.cost_usd
        )
        open_spans.update(status=Run.Status.CANCELLED, ended_at=now, error=RUN_CANCELLED["message"])
        run.status, run.completed_at, run.error = Run.Status.CANCELLED, now, dict(RUN_CANCELLED)
        if run.started_at is not None:
            run.execution_time_ms = int((now - run.started_at).total_seconds() * 1000)
        fields = ["status", "completed_at", "error", "execution_time_ms", "input_tokens", "output_tokens"]
        run.save(update_fields=[*fields, "cost_usd"])
    return run, approvals


async def _waiting_run_ended(run: Run, approvals: list[Approval]) -> None:
    recorder = await RunRecorder.resume(run)
    for approval in approvals:
        agent_id = approval.subject.get("agent_id") or None
        await recorder.emit("approval.resolved", agent_id=agent_id, data=approval_event_data(approval))
        await _announce("approval.resolved", approval)
    await run_abandoned_announce(run)  # the final run.failed (status cancelled), metrics, webhooks
    on_finished = finished_load(run.finished_hook)
    if on_finished is not None:  # as for a running run cancelled (`_reporting`)
        on_finished(RunFailed(run, RUN_CANCELLED["code"], RUN_CANCELLED["message"], 409))


# --- resuming ----------------------------------------------------------------------------------


async def run_continue(run: Run) -> None:
    """Resumes a waiting run: queued, a new job of the run (any worker); inline, a background task
    of this process (awaited here when this loop ends with the call, as in commands and tests)."""
    if queue_enabled():
        await sync_to_async(_defer_again)(run)
        return
    task = spawn(_resume_inline, run.pk, name=f"resume {run.pk}")
    from providers.aio import on_server_loop

    if not on_server_loop():
        await asyncio.gather(task, return_exceptions=True)


async def _resume_inline(run_id: str) -> None:
    """The run resumed to its end (or its next pause), reported to the finish hook its row keeps,
    as a worker's resume reports it (`observability.tasks`)."""
    from observability.replay import run_resume

    run = await Run.objects.aget(pk=run_id)
    root = await Span.objects.filter(run_id=run_id, kind=Span.Kind.RUN, parent_id=None).afirst()
    execution = functools.partial(run_resume, run, _rebuilt_work(run), name=root.name if root else run.kind)
    with contextlib.suppress(RunFailed, RunWaiting):  # recorded
        await _reporting(execution, finished_load(run.finished_hook))


def _rebuilt_work(run: Run):
    """The run's work rebuilt from its row by its kind's rebuilder (the apps' `tasks` modules
    register them, as for a worker); a failure to rebuild fails the run, recorded."""
    from django.utils.module_loading import autodiscover_modules

    from observability.queue import run_rebuild

    async def work(recorder, root_span_id):
        await sync_to_async(autodiscover_modules)("tasks")
        rebuilt = await sync_to_async(run_rebuild)(run, stream=False)
        return await rebuilt(recorder, root_span_id)

    return work


def _defer_again(run: Run) -> None:
    """A new job of the run, with the arguments of its last one (its name, streaming) and the
    finish hook its row keeps."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    from observability.queue import EXECUTE_RUN_TASK
    from observability.tasks import execute_run

    last = (
        ProcrastinateJob.objects.filter(task_name=EXECUTE_RUN_TASK, queueing_lock=run.pk)
        .order_by("-id")
        .first()
    )
    args = dict(last.args) if last is not None else {"name": run.kind, "stream": False}
    args.update(run_id=run.pk, finished=run.finished_hook, deferred_at=timezone.now().timestamp())
    execute_run.configure(queueing_lock=run.pk).defer(**args)


# --- the periodic check of overdue approvals ----------------------------------------------------


def _start_sweeping() -> asyncio.Task | None:
    every_s = settings.APPROVAL_SWEEP_EVERY_S
    if every_s <= 0 or queue_enabled():  # queued: the pool's periodic task (tasks.py)
        return None
    return every(every_s, approvals_expire, name="approvals sweeper")


approvals_sweeping_start = loop_local(_start_sweeping)
