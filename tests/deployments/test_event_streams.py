"""The SSE event stream of a deployment run: replayed from the database after `after_seq`, then
followed through the run's channel-layer group (catching up from the database when a live event
skips a seq), and capped per deployment key."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.test import AsyncClient

from deployments.services import deployment_key_create
from observability.events import run_group
from observability.models import Run, RunEvent
from observability.recorder import event_frame
from tests.deployments.helpers import bearer, deploy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

GUARD_S = 10  # only so that a stream that never sends fails the test instead of hanging it


@pytest.fixture
def running(admin_user):
    """A deployment, its key and a running run of it with events 1-3 stored."""
    deployment, key = deploy(admin_user, name="support")
    run = Run.objects.create(
        organization=deployment.organization,
        kind=Run.Kind.DEPLOYMENT,
        deployment_id=deployment.pk,
        status=Run.Status.RUNNING,
    )
    for seq, kind in enumerate(["run.started", "agent.started", "llm.delta"], start=1):
        store(run, seq, kind)
    return deployment, key, run


def store(run: Run, seq: int, kind: str) -> RunEvent:
    return RunEvent.objects.create(run=run, seq=seq, type=kind, data={"n": seq})


def live_only(run: Run, seq: int, kind: str) -> dict:
    """The frame of an event that is published but (not yet) stored."""
    return event_frame(RunEvent(run=run, seq=seq, type=kind, data={"n": seq}))


async def publish(run: Run, frame: dict) -> None:
    await get_channel_layer().group_send(run_group(run.pk), {"type": "run.event", "event": frame})


async def open_stream(run: Run, key: str, after_seq: int = 0):
    return await AsyncClient().get(
        f"/workflows/support/runs/{run.pk}/events", {"after_seq": after_seq}, headers=bearer(key)
    )


class Frames:
    """Reads a streaming response one SSE event at a time."""

    def __init__(self, response):
        self.chunks = aiter(response.streaming_content)

    async def next(self) -> dict:
        while True:
            chunk = (await asyncio.wait_for(anext(self.chunks), GUARD_S)).decode()
            data = [line for line in chunk.splitlines() if line.startswith("data: ")]
            if data:
                return json.loads(data[0].removeprefix("data: "))

    async def rest(self) -> list[dict]:
        return [
            json.loads(line.removeprefix("data: "))
            async for chunk in self.chunks
            for line in chunk.decode().splitlines()
            if line.startswith("data: ")
        ]


async def test_events_come_from_the_run_group_after_the_stored_replay(running):
    _, key, run = running
    response = await open_stream(run, key, after_seq=1)
    assert response.status_code == 200
    frames = Frames(response)
    assert [(await frames.next())["seq"] for _ in range(2)] == [2, 3]  # replayed from the database

    await publish(run, live_only(run, 4, "llm.delta"))  # only on the channel layer
    assert (await frames.next())["seq"] == 4

    await sync_to_async(store)(run, 5, "agent.completed")  # stored, its live message lost
    await sync_to_async(store)(run, 6, "run.completed")
    await publish(run, event_frame(await RunEvent.objects.aget(run=run, seq=6)))
    rest = [await frames.next(), await frames.next()]
    assert [(f["seq"], f["type"]) for f in rest] == [(5, "agent.completed"), (6, "run.completed")]
    assert await frames.rest() == []  # the stream ends with the run


async def test_a_key_holds_at_most_the_configured_number_of_streams(running, settings, admin_user):
    settings.MAX_EVENT_STREAMS_PER_KEY = 2
    deployment, key, run = running
    held = [await open_stream(run, key), await open_stream(run, key)]
    assert [response.status_code for response in held] == [200, 200]

    refused = await open_stream(run, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_streams" and int(refused["Retry-After"]) >= 1
    _, other_key = await sync_to_async(deployment_key_create)(user=admin_user, deployment=deployment)
    other = await open_stream(run, other_key)
    assert other.status_code == 200  # the cap is per key

    await sync_to_async(store)(run, 4, "run.completed")
    await publish(run, event_frame(await RunEvent.objects.aget(run=run, seq=4)))
    ended = await Frames(held[0]).rest()
    assert ended[-1]["type"] == "run.completed"
    assert (await open_stream(run, key)).status_code == 200  # an ended stream gave its slot back
    for response in (held[1], other):
        await Frames(response).rest()
