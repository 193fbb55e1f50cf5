"""Cancels that arrive at another process reach a run through the cache, read for every run of an
event loop at once."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache

from observability import supervisor
from observability.models import Run
from observability.supervisor import RunFailed, RunOutcome, run_execute
from tests.observability.factories import queued_run

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_cancel_flagged_by_another_process_stops_only_its_run(member, monkeypatch):
    monkeypatch.setattr(supervisor, "CANCEL_POLL_S", 0.05)
    reads = []
    read_many = BaseCache.aget_many

    async def counting(self, keys, *args, **kwargs):
        reads.append(len(keys))
        return await read_many(self, keys, *args, **kwargs)

    monkeypatch.setattr(BaseCache, "aget_many", counting)
    release = asyncio.Event()

    async def work(recorder, root_span_id):
        await release.wait()
        return RunOutcome(output={"done": True})

    runs = [
        await sync_to_async(queued_run)(organization_id=member.organization_id, user_id=member.pk, input={})
        for _ in range(3)
    ]
    executions = [asyncio.create_task(run_execute(run, work, name="waiting")) for run in runs]
    await asyncio.sleep(0.2)
    # What `run_cancel` does when the run executes in another process.
    await cache.aset(f"run-cancel:{runs[0].pk}", 1)
    with pytest.raises(RunFailed) as failed:
        await asyncio.wait_for(executions[0], 2)
    assert failed.value.code == "cancelled"
    release.set()
    await asyncio.gather(*executions[1:])
    statuses = {run.pk: run.status async for run in Run.objects.all()}
    assert statuses == {runs[0].pk: "cancelled", runs[1].pk: "completed", runs[2].pk: "completed"}
    # One read of every run's flag per poll, not one read per run.
    assert reads and max(reads) == 3
