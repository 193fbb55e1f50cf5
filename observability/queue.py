"""Runs as jobs (`STUDIO_EXECUTION=queue`): what the web side of `run_start` does, and what the
apps above the ledger plug in so that a worker can execute a run from its stored row.

A web process stores the run and its Procrastinate job in one transaction (`run_enqueue`), so no
run is queued without a job and no job names a run that is not there; a synchronous caller then
waits for the run's final event (`run_completion`). A worker (`observability.tasks.execute_run`)
rebuilds the run's work from the row through the rebuilder its kind registered
(`run_rebuilder`), and reports the end to the finish hook the caller named (`finished_hook`):
work and callbacks are closures in the web process, only data crosses to the worker. The run's row
keeps the hook too (`Run.finished_hook`, inline as well), for the execution that ends a run which
waited for an approval.

The ledger imports nothing above it, so the apps that know how to run things register here:
agents (`agent_test` runs), orchestrations and deployments, from their `tasks` modules, which
Procrastinate's Django app imports in every process where the queue exists."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from observability.events import FINAL_EVENTS, run_group
from observability.limits import run_admit
from observability.models import Run, RunEvent

logger = logging.getLogger(__name__)

RUNS_QUEUE = "runs"
# A waiter reads the run from the database this often when no final event reached it (channel
# layer down or without Redis, or an event published before the waiter subscribed).
COMPLETION_POLL_S = 1.0
# Keys of a `run.completed` event's data that are not the outcome's `extra`.
_COMPLETED_KEYS = frozenset({"status", "execution_time_ms", "tokens", "cost_usd", "output", "http_status"})

# A rebuilder gives the work of a stored run (the run's row and whether to stream the model's
# text); it reads the database, so workers call it in a thread.
RunRebuilder = Callable[[Run, bool], Any]
_rebuilders: dict[str, RunRebuilder] = {}
_finished_hooks: dict[str, Callable[..., None]] = {}
# Fails a started run that will not go on, releasing what it holds: `async (run_id, error) ->
# the failed Run, or None if it was not there to fail` (providers.reaping registers it: budget
# holds are the providers' business).


def queue_enabled() -> bool:
    return settings.EXECUTION == "queue"


def run_rebuilder(kind: str) -> Callable[[RunRebuilder], RunRebuilder]:
    """Registers how a worker rebuilds the work of runs of `kind` from their row (see module doc)."""

    def register(rebuild: RunRebuilder) -> RunRebuilder:
        _rebuilders[kind] = rebuild
        return rebuild

    return register


def run_rebuild(run: Run, *, stream: bool):
    """The work of a stored run, rebuilt by its kind's rebuilder (synchronous: reads the database)."""
    try:
        rebuild = _rebuilders[run.kind]
    except KeyError:
        raise LookupError(f"No rebuilder is registered for {run.kind} runs.") from None
    return rebuild(run, stream)


def finished_hook(hook: Callable[..., None]) -> Callable[..., None]:
    """Marks a function as a finish callback a worker may apply: `on_finished` may then be
    `functools.partial(hook, *json_args)`, sent to the worker as its name and arguments."""
    _finished_hooks[_hook_name(hook)] = hook
    return hook


def _hook_name(hook: Callable[..., None]) -> str:
    return f"{hook.__module__}.{hook.__qualname__}"


def finished_dump(on_finished) -> dict[str, Any] | None:
    """`on_finished` as job data: {"hook", "args"}. TypeError when it is not a registered hook
    (or a partial of one over positional JSON values): a closure cannot reach a worker."""
    if on_finished is None:
        return None
    func, args = on_finished, ()
    if isinstance(on_finished, functools.partial) and not on_finished.keywords:
        func, args = on_finished.func, on_finished.args
    name = _hook_name(func) if callable(func) else ""
    if _finished_hooks.get(name) is not func or not all(
        isinstance(arg, str | int | float | bool) or arg is None for arg in args
    ):
        raise TypeError(
            f"With STUDIO_EXECUTION=queue, on_finished must be a @finished_hook function or a "
            f"partial of one over plain values (got {on_finished!r})."
        )
    return {"hook": name, "args": list(args)}


def finished_kept(on_finished) -> dict[str, Any] | None:
    """What an inline run's row keeps of `on_finished` (`Run.finished_hook`): its `finished_dump`,
    or None for a closure, which only the execution it was given to can apply (a run that waits
    for an approval ends in another, perhaps in another process)."""
    try:
        return finished_dump(on_finished)
    except TypeError:
        return None


def finished_load(data: Mapping[str, Any] | None):
    """The callback `finished_dump` described (None for none; LookupError for an unknown hook)."""
    if not data:
        return None
    return functools.partial(_finished_hooks[data["hook"]], *data["args"])


def run_enqueue(draft, *, name: str, stream: bool, on_finished=None) -> Run:
    """Admits and stores the draft as a queued run (RunLimitReached otherwise) and defers its job,
    in one transaction."""
    from observability.tasks import execute_run  # the task module imports this one

    finished = finished_dump(on_finished)
    with transaction.atomic():
        run = run_admit(dataclasses.replace(draft, finished_hook=finished))
        execute_run.configure(queueing_lock=run.pk).defer(
            run_id=run.pk, name=name, stream=stream, finished=finished, deferred_at=time.time()
        )
    return run


async def run_completion(run: Run):
    """Waits for a queued run to end: its final event on the channel layer, or what the database
    says every COMPLETION_POLL_S. The finished run and its RunOutcome, or RunFailed, as
    `run_execute` gives them inline."""
    settled = (*Run.FINISHED, Run.Status.WAITING)  # a waiting run answers RunWaiting
    async with _final_events(run.pk) as final_event:
        while not await Run.objects.filter(pk=run.pk, status__in=settled).aexists():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(final_event(), COMPLETION_POLL_S)
    return await run_result(run.pk)


@contextlib.asynccontextmanager
async def _final_events(run_id: str):
    """Subscribes to the run's group: yields a coroutine function that returns at a final event
    (or never, when the layer is unavailable: the database poll then decides)."""
    layer = get_channel_layer()
    channel = None
    if layer is not None:
        try:
            channel = await layer.new_channel()
            await layer.group_add(run_group(run_id), channel)
        except Exception:
            logger.warning("Channel layer unavailable; waiting for %s on the database", run_id, exc_info=True)
            channel = None

    async def final_event() -> None:
        if channel is None:
            await asyncio.Event().wait()
        while True:
            message = await layer.receive(channel)
            if message.get("event", {}).get("type") in (*FINAL_EVENTS, "run.waiting"):
                return

    try:
        yield final_event
    finally:
        if channel is not None:
            with contextlib.suppress(Exception):
                await layer.group_discard(run_group(run_id), channel)


async def run_result(run_id: str):
    """A finished run as `run_execute` returns it: (run, RunOutcome) or RunFailed raised."""
    from observability.supervisor import RunFailed, RunOutcome, RunWaiting

    run = await Run.objects.aget(pk=run_id)
    if run.status == Run.Status.WAITING:
        raise RunWaiting(run)
    final = await RunEvent.objects.filter(run_id=run_id, type__in=FINAL_EVENTS).order_by("-seq").afirst()
    data = final.data if final is not None else {}
    if run.status != Run.Status.COMPLETED:
        error = run.error or {}
        status = data.get("http_status") or (409 if run.status == Run.Status.CANCELLED else 500)
        raise RunFailed(run, error.get("code", "run_failed"), error.get("message", "The run failed."), status)
    outcome = RunOutcome(
        output=run.output or {},
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost_usd=run.cost_usd,
        extra={key: value for key, value in data.items() if key not in _COMPLETED_KEYS},
    )
    return run, outcome


def runs_with_live_jobs(run_ids: Iterable[str]) -> set[str]:
    """Of these runs, those whose job is waiting or being executed: not the reaper's to fail (a
    worker will run or resume them; a job of a dead worker is retried, see `tasks`)."""
    run_ids = list(run_ids)
    if not queue_enabled() or not run_ids:
        return set()
    from procrastinate.contrib.django.models import ProcrastinateJob

    live = ProcrastinateJob.objects.filter(
        task_name=EXECUTE_RUN_TASK, status__in=("todo", "doing"), queueing_lock__in=run_ids
    )
    return set(live.values_list("queueing_lock", flat=True))


EXECUTE_RUN_TASK = "observability.tasks.execute_run"
