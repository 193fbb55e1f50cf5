"""Failing runs whose process died: while every server process runs, and once at start-up.

A run refreshes its heartbeat every `HEARTBEAT_INTERVAL_S` (10 s); one whose heartbeat is older
than `STALE_AFTER_S` (three missed beats, 30 s) belongs to a dead process. Every server process
looks for such runs every `settings.REAP_EVERY_S` (`STUDIO_REAP_EVERY_S`, 10 s), so a crash
followed by a quick restart does not leave runs `running`. Each run is claimed in one transaction
(the first reaper to lock it wins; a second one finds it finished or locked), which frees the
budget holds of its LLM calls in flight, closes its open spans and fails it; its final
`run.failed` event follows once that committed, and so does the report to the run's finish hook
(`Run.finished_hook`, a deployment call's metrics), which the dead execution never made.

With `STUDIO_EXECUTION=queue` no web process reaps on a loop: the worker pool does, as a periodic
task (`providers.tasks`), once per period across all workers; a run whose job is waiting or being
executed is the queue's (its job runs, resumes or is retried), not the reaper's."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from observability.loops import loop_local
from observability.models import Run
from observability.queue import finished_load, queue_enabled, runs_with_live_jobs
from observability.supervisor import (
    ABANDONED,
    RunFailed,
    run_abandon,
    run_abandoned_announce,
    runs_active_here,
    runs_stale,
)
from providers.budgets import budget_release_run
from studio.background import every

logger = logging.getLogger(__name__)

REAP_BATCH = 100


def _run_claim(run_id: str) -> tuple[Run, int] | None:
    """Fails the run if it is still stale and no other reaper holds it; (run, calls released)."""
    with transaction.atomic():
        run = runs_stale().select_for_update(skip_locked=True).filter(pk=run_id).first()
        if run is None:
            return None
        released = budget_release_run(run.pk)
        run_abandon(run, ABANDONED)
    return run, released


def _stale_ids() -> list[str]:
    stale = runs_stale().exclude(pk__in=runs_active_here()).order_by("created_at")
    ids = list(stale.values_list("pk", flat=True)[:REAP_BATCH])
    queued = runs_with_live_jobs(ids)
    return [run_id for run_id in ids if run_id not in queued]


async def runs_reap() -> list[tuple[Run, int]]:
    """Fails the stale runs there are now; each (run, LLM calls in flight whose holds were freed)."""
    reaped = []
    for run_id in await sync_to_async(_stale_ids)():
        claimed = await sync_to_async(_run_claim)(run_id)
        if claimed is not None:
            await run_abandoned_announce(claimed[0])
            _finished_report(claimed[0])
            reaped.append(claimed)
    return reaped


def _finished_report(run: Run) -> None:
    """Tells the run's finish hook that it failed, as the execution that died would have. A hook
    that fails is logged: the run is reaped all the same, and so are the others."""
    try:
        on_finished = finished_load(run.finished_hook)
        if on_finished is not None:
            on_finished(RunFailed(run, ABANDONED["code"], ABANDONED["message"], 500))
    except Exception:
        logger.exception("The finish hook of reaped run %s failed", run.pk)


async def runs_reap_logged() -> int:
    """`runs_reap`, each reaped run logged; how many."""
    reaped = await runs_reap()
    for run, released in reaped:
        logger.warning("Reaped %s: its process stopped (%d LLM call(s) in flight)", run.pk, released)
    return len(reaped)


def reaping_start() -> asyncio.Task | None:
    """Starts the running loop's periodic reaper, once (later calls return the same task); None
    when `STUDIO_REAP_EVERY_S` is 0."""
    return _reaper()


def _start_reaping() -> asyncio.Task | None:
    every_s = settings.REAP_EVERY_S
    if every_s <= 0 or queue_enabled():  # queued: the worker pool's periodic task (providers.tasks)
        return None
    return every(every_s, runs_reap_logged, name="reaper")


_reaper = loop_local(_start_reaping)
