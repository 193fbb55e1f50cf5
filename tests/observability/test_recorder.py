"""The recorder's event numbering: seq increases by one within a run, whatever fails; and the
batches of the run's work task that wait for its next write (`batch(defer=True)`)."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import OperationalError

from observability import recorder as recorder_module
from observability import writer
from observability.events import run_group
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


class SuspendingLayer(InMemoryChannelLayer):
    """An in-memory layer whose sends yield to the loop, as Redis's do (the in-memory ones never
    suspend, so no cancel could land in them)."""

    async def group_send(self, group, message):
        await asyncio.sleep(0)
        await super().group_send(group, message)


async def test_a_batch_cancelled_while_it_is_written_is_stored_and_published_then_the_cancel_follows(
    recorder, settings, monkeypatch
):
    """The write was in its batch when the cancel came: it is made, so its caller goes on to its
    next await (and closes the span it opened, say) and followers are sent its events."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.SuspendingLayer"}}
    layer = get_channel_layer()
    follower = await layer.new_channel()
    await layer.group_add(run_group(recorder.run.pk), follower)
    loop, writing, release = asyncio.get_running_loop(), asyncio.Event(), threading.Event()
    apply = writer._apply

    def held(batch):
        loop.call_soon_threadsafe(writing.set)
        release.wait()
        apply(batch)

    monkeypatch.setattr(writer, "_apply", held)
    seen = []

    async def agent_start():
        async with recorder.batch():
            await recorder.emit("agent.started", data={})
        seen.append("stored")
        await asyncio.sleep(0)
        seen.append("not cancelled")

    task = asyncio.create_task(agent_start())
    try:
        await writing.wait()
        task.cancel()
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["stored"]
    assert await stored(recorder.run) == [(1, "agent.started")]
    message = await asyncio.wait_for(layer.receive(follower), 5)
    assert message["event"]["type"] == "agent.started"


@pytest.fixture
async def busy_commit():
    """`await busy_commit()` holds the group commit's sync thread with a write of its own until the
    test sets the event it returns, so that the writes asked meanwhile wait in the queue."""
    loop, release, held_by = asyncio.get_running_loop(), threading.Event(), []

    async def hold() -> threading.Event:
        writing = asyncio.Event()

        def held():
            loop.call_soon_threadsafe(writing.set)
            release.wait()

        held_by.append(asyncio.create_task(writer.ledger_write(held)))
        await writing.wait()
        return release

    yield hold
    release.set()
    for task in held_by:
        await task


async def test_a_span_close_cancelled_while_it_waits_is_made_and_the_cancel_follows(recorder, busy_commit):
    span_id = await recorder.span_open(kind="agent", name="agent", parent_id=None)
    release = await busy_commit()
    closing = asyncio.create_task(recorder.span_close(span_id, status="completed"))
    await asyncio.sleep(0)  # one turn of the loop: the close waits behind the busy write
    closing.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    span = await Span.objects.aget(pk=span_id)
    assert span.status == "completed" and span.ended_at is not None


async def test_a_guarded_batch_cancelled_while_it_waits_is_not_made(recorder, busy_commit):
    async def admit():
        async with recorder.batch(guard=lambda: None):
            await recorder.emit("run.started", data={})

    release = await busy_commit()
    admitting = asyncio.create_task(admit())
    await asyncio.sleep(0)
    admitting.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await admitting
    assert await stored(recorder.run) == []
