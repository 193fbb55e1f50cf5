"""An execute frame starts the run (`run_start`, in the background) and then follows it: whatever
the run emitted before the consumer joined its group is replayed, so a client gets every event in
order even from a run that finished first, and may execute again once it has."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from observability.models import Run
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

GOOD = {"response": "We will refund you today.", "priority": "high"}


async def receive_until_final(communicator, timeout=10):
    events = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        events.append(frame)
        if frame["type"] in ("run.completed", "run.failed"):
            return events


@pytest.fixture
def late_follow(monkeypatch):
    """The consumer joins the run's group only once the run has finished."""
    layer_type = type(get_channel_layer())
    group_add = layer_type.group_add
    finished = asyncio.Event()

    async def late(self, group, channel):
        await asyncio.wait_for(finished.wait(), 10)
        return await group_add(self, group, channel)

    monkeypatch.setattr(layer_type, "group_add", late)
    return finished


async def test_a_run_that_ends_before_the_follow_still_reaches_the_client_whole(member, late_follow):
    agent = await sync_to_async(make_agent)(member.organization, support_yaml(responses=[{"response": GOOD}]))
    communicator, connected, _ = await open_communicator(f"/api/agents/{agent.pk}/stream", user=member)
    assert connected

    async def release_when_done():
        while not await Run.objects.filter(status="completed").aexists():
            await asyncio.sleep(0.02)
        late_follow.set()

    releasing = asyncio.create_task(release_when_done())
    for _ in range(2):  # the second execute is accepted: the first run is over for the consumer
        await communicator.send_json_to({"type": "execute", "input": {"inquiry": "Refund please"}})
        events = await receive_until_final(communicator)
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.completed"
        assert events[-1]["data"]["output"] == GOOD
    await releasing
    await communicator.disconnect()
