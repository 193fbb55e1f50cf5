"""The recorder's event numbering: seq increases by one within a run, whatever fails."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError

from observability import recorder as recorder_module
from observability.models import Run, RunEvent
from observability.recorder import RunRecorder

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_group_commit")]


async def stored(run) -> list[tuple[int, str]]:
    return [(event.seq, event.type) async for event in RunEvent.objects.filter(run=run).order_by("seq")]


@pytest.fixture
async def recorder(member):
    run = await Run.objects.acreate(organization_id=member.organization_id, user=member, kind="agent_test")
    return RunRecorder(run)


@pytest.fixture
def second_write_fails(monkeypatch):
    real, calls = recorder_module.ledger_write, []

    async def failing_second(fn, **options):
        calls.append(fn)
        if len(calls) == 2:
            raise OperationalError("the database went away")
        return await real(fn, **options)

    monkeypatch.setattr(recorder_module, "ledger_write", failing_second)


@pytest.mark.usefixtures("second_write_fails")
async def test_an_event_that_was_not_stored_leaves_no_gap(recorder):
    await recorder.emit("first", data={})
    with pytest.raises(OperationalError):
        await recorder.emit("lost", data={})
    await recorder.emit("next", data={})
    assert await stored(recorder.run) == [(1, "first"), (2, "next")]


@pytest.mark.usefixtures("second_write_fails")
async def test_a_batch_that_was_not_stored_leaves_no_gap(recorder):
    await recorder.emit("first", data={})
    with pytest.raises(OperationalError):
        async with recorder.batch():
            await recorder.emit("lost", data={})
            await recorder.emit("lost too", data={})
    async with recorder.batch():
        await recorder.emit("next", data={})
        await recorder.emit("and next", data={})
    assert await stored(recorder.run) == [(1, "first"), (2, "next"), (3, "and next")]


async def test_a_task_started_inside_a_batch_writes_for_itself(recorder):
    async with recorder.batch():
        await recorder.emit("batched", data={})
        await asyncio.create_task(recorder.emit("from another task", data={}))
        assert await stored(recorder.run) == [(1, "from another task")]
    assert await stored(recorder.run) == [(1, "from another task"), (2, "batched")]
