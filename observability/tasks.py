"""The worker pool's tasks (Procrastinate, `STUDIO_EXECUTION=queue`): executing runs, and the
periodic work every worker shares, each period's job deferred once across all workers.

`execute_run` executes a stored run the way `run_start` does inline (`run_execute`, then the
finish hook), rebuilding its work from the run (`observability.queue.run_rebuild`). A job that
starts for a run already started (its worker died, or handed it back on shutdown) resumes it
(`observability.replay.run_resume`: recorded agent calls are answered from the ledger; past
`STUDIO_RUN_MAX_ATTEMPTS` executions the run fails instead).

Shutdown (SIGTERM to `manage.py worker`): Procrastinate stops fetching jobs and gives the running
ones `STUDIO_WORKER_DRAIN_S`; the runs still going then are handed back (`run_hand_back`: queued
again, their job retried at once, for another worker to resume). A worker killed outright stops
beating: `retry_stalled_jobs` puts its jobs back once its heartbeat is `STUDIO_WORKER_STALLED_S`
old."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import call_command
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from observability import metrics
from observability.models import Run
from observability.queue import (
    EXECUTE_RUN_TASK,
    RUNS_QUEUE,
    finished_load,
    queue_enabled,
    run_rebuild,
)
from observability.replay import run_resume
from observability.rollup import usage_rollup
from observability.supervisor import (
    RunFailed,
    RunHandedBack,
    RunWaiting,
    _execute_reporting,
    _reporting,
    run_cancel_requested,
    run_hand_back,
)
from studio.background import spawn

logger = logging.getLogger(__name__)

MAINTENANCE_QUEUE = "maintenance"
HAND_BACK_WAIT_S = 5.0


def cron_every(seconds: float) -> str:
    """A cron line (seconds in the sixth field) for a period in whole seconds that divides a minute,
    or whole minutes that divide an hour."""
    seconds = max(1, round(seconds))
    if seconds < 60:
        return f"* * * * * */{seconds}"
    return f"*/{max(1, seconds // 60)} * * * *"


@app.task(
    name=EXECUTE_RUN_TASK,
    queue=RUNS_QUEUE,
    pass_context=True,
    # Only a hand-back is retried by Procrastinate: a run that failed has ended, recorded.
    retry=RetryStrategy(retry_exceptions=[RunHandedBack]),
)
async def execute_run(
    context, *, run_id: str, name: str, stream: bool, finished: dict | None, deferred_at: float
) -> None:
    attempt = context.job.attempts + 1
    if attempt == 1:
        metrics.job_started(queue=RUNS_QUEUE, latency_s=max(0.0, time.time() - deferred_at))
    run = await Run.objects.filter(pk=run_id).afirst()
    if run is None or run.status in Run.FINISHED:
        return  # pruned, or ended meanwhile (cancelled, reaped): nothing to do
    on_finished = finished_load(finished)
    # The run goes on in a task of its own (own context and database connection, see
    # studio.background), so that the job being cancelled at shutdown hands it back rather than
    # cancelling it.
    execution = spawn(_execute, run, name, stream, on_finished, attempt, name=f"run {run_id}")
    try:
        await asyncio.shield(execution)
    except asyncio.CancelledError:  # Procrastinate aborts the jobs still running after the drain
        if await _handed_back(run_id, execution):
            raise RunHandedBack(run_id) from None
        raise


async def _handed_back(run_id: str, execution: asyncio.Task) -> bool:
    """Hands the run back (see `run_hand_back`) once its work runs, if it is still going: a job
    stopped while its run was being rebuilt or marked running waits for that, briefly."""
    deadline = asyncio.get_running_loop().time() + HAND_BACK_WAIT_S
    while not execution.done() and asyncio.get_running_loop().time() < deadline:
        if run_hand_back(run_id):
            await asyncio.gather(execution, return_exceptions=True)
            return True
        await asyncio.sleep(0.05)
    return False


async def _execute(run: Run, name: str, stream: bool, on_finished, attempt: int) -> None:
    # Cancelled while its job waited: recorded cancelled, no model called.
    cancelled = await sync_to_async(run_cancel_requested)(run.pk)
    work = _cancelled_work if cancelled else _rebuilt_work(run, stream)
    try:
        if run.started_at is None:
            await _execute_reporting(run, work, name, on_finished)
        else:
            await _resume(run, work, name, on_finished)
    except (RunFailed, RunWaiting):
        pass  # recorded, and reported to the finish hook (a waiting run: once it ends)
    finally:
        metrics.run_attempts(attempt)


async def _cancelled_work(recorder, root_span_id):
    raise asyncio.CancelledError


def _rebuilt_work(run: Run, stream: bool):
    """The run's work, rebuilt when it starts (a failure to rebuild fails the run, recorded)."""

    async def work(recorder, root_span_id):
        rebuilt = await sync_to_async(run_rebuild)(run, stream=stream)
        return await rebuilt(recorder, root_span_id)

    return work


async def _resume(run: Run, work, name: str, on_finished) -> None:
    """A run already started by a worker that died or handed it back: resumed where it was
    (past STUDIO_RUN_MAX_ATTEMPTS executions it fails instead, see `run_resume`)."""
    metrics.run_resumed()
    await _reporting(functools.partial(run_resume, run, work, name=name), on_finished)


# --- periodic work, once per period across the pool ---------------------------------------------


@app.periodic(cron=cron_every(min(settings.WORKER_STALLED_S, 30) / 3), periodic_id="retry_stalled_jobs")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="retry_stalled_jobs", pass_context=True)
async def retry_stalled_jobs(context, timestamp: int) -> int:
    """Puts back the jobs of workers whose heartbeat is older than STUDIO_WORKER_STALLED_S (killed,
    or cut off): another worker resumes their runs."""
    stalled = await context.app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.WORKER_STALLED_S
    )
    for job in stalled:
        logger.warning("Retrying job %s of a stalled worker (%s)", job.id, job.call_string)
        await context.app.job_manager.retry_job(job)
    return len(stalled)


@app.periodic(cron="17 3 * * *", periodic_id="prune_runs")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="prune_runs")
async def prune_runs(timestamp: int) -> None:
    """`manage.py prune_runs` daily, for finished runs older than STUDIO_RUN_RETENTION_DAYS (0: off)."""
    days = settings.RUN_RETENTION_DAYS
    if days > 0:
        await sync_to_async(call_command)("prune_runs", older_than=f"{days}d")


@app.periodic(cron="7 * * * *", periodic_id="rollup_usage")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="rollup_usage")
async def rollup_usage(timestamp: int) -> int:
    """The daily usage rollups of closed days (`observability.rollup.usage_rollup`), hourly."""
    return await usage_rollup() if settings.ROLLUP_EVERY_S > 0 else 0


def queue_job_counts() -> list[dict[str, Any]]:
    """Jobs waiting and running now, by queue (what the queue gauges report)."""
    from django.db.models import Count
    from procrastinate.contrib.django.models import ProcrastinateJob

    return list(
        ProcrastinateJob.objects.filter(status__in=("todo", "doing"))
        .values("queue_name", "status")
        .annotate(jobs=Count("id"))
        .order_by()
    )


if queue_enabled():
    metrics.queue_gauges_register(queue_job_counts)
