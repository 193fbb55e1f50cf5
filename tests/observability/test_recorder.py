"""The recorder's event numbering: seq increases by one within a run, whatever fails; and the
batches of the run's work task that wait for its next write (`batch(defer=True)`)."""

from __future__ import annotations

import asyncio
import functools

import pytest
from django.db import OperationalError

from observability import recorder as recorder_module
from observability import writer
from observability.models import Run, RunEvent, Span
from observability.recorder import RunRecorder
from observability.supervisor import RunDraft, RunOutcome, run_start

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


@pytest.fixture
def transactions(monkeypatch):
    """The ledger writes of every transaction the group commit runs, by the names of their events."""
    seen: list[list[str]] = []
    apply = writer._apply

    def recording(batch):
        seen.append([])
        apply(batch)

    real_insert = recorder_module.row_insert

    def insert(obj):
        if isinstance(obj, RunEvent) and seen:
            seen[-1].append(obj.type)
        real_insert(obj)

    monkeypatch.setattr(writer, "_apply", recording)
    monkeypatch.setattr(recorder_module, "row_insert", insert)
    return seen


AGENT_RUN = [(1, "run.started"), (2, "agent.started"), (3, "agent.completed"), (4, "run.completed")]


def draft_of(member) -> RunDraft:
    return RunDraft(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})


def touch(run_id: str) -> str:
    """A write standing for an LLM call's reservation: it returns what it stored."""
    Run.objects.filter(pk=run_id).update(output={"touched": True})
    return "reserved"


async def agent_like(recorder, root) -> RunOutcome:
    """What an agent in the run's work task writes: its start, a call, its end."""
    async with recorder.batch(defer=True):
        span = await recorder.span_open(kind="agent", name="agent", parent_id=root, agent_id="agent-1")
        await recorder.emit("agent.started", agent_id="agent-1", data={})
    assert await recorder.write(functools.partial(touch, recorder.run.pk)) == "reserved"
    async with recorder.batch(defer=True):
        await recorder.span_close(span, status="completed")
        await recorder.emit("agent.completed", agent_id="agent-1", data={})
    return RunOutcome(output={"ok": True})


async def test_an_agent_of_the_work_task_starts_with_its_next_write_and_ends_with_the_run(
    member, transactions
):
    run, _ = await run_start(draft_of(member), agent_like, name="deferred")
    assert transactions == [
        ["run.started"],
        ["agent.started"],  # with the write that came next (an LLM call's reservation)
        ["agent.completed", "run.completed"],
    ]
    assert await stored(run) == AGENT_RUN
    agent = await Span.objects.aget(run=run, kind="agent")
    assert agent.status == "completed" and agent.ended_at is not None


async def test_a_deferred_batch_of_another_task_is_stored_at_once(member, transactions):
    async def child(recorder, root):
        async with recorder.batch(defer=True):
            await recorder.emit("agent.started", agent_id="agent-1", data={})

    async def work(recorder, root) -> RunOutcome:
        await asyncio.create_task(child(recorder, root))
        assert await stored(recorder.run) == [(1, "run.started"), (2, "agent.started")]
        return RunOutcome(output={})

    await run_start(draft_of(member), work, name="children")
    assert transactions == [["run.started"], ["agent.started"], ["run.completed"]]


async def test_what_a_failed_write_carried_goes_with_the_next_one(member):
    def refuses():
        raise ValueError("refused")

    async def work(recorder, root) -> RunOutcome:
        async with recorder.batch(defer=True):
            await recorder.emit("agent.started", agent_id="agent-1", data={})
        with pytest.raises(ValueError, match="refused"):
            await recorder.write(refuses)
        async with recorder.batch(defer=True):
            await recorder.emit("agent.completed", agent_id="agent-1", data={})
        return RunOutcome(output={})

    run, _ = await run_start(draft_of(member), work, name="carried")
    assert await stored(run) == AGENT_RUN
