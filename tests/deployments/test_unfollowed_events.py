"""Events of a run nobody follows are not sent to the channel layer (observability/events.py), and a
follower that connects mid-run still sees every event: the stored ones replayed, then the live ones."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from observability.events import publish_run_event, run_group
from observability.models import RunEvent
from observability.recorder import event_frame
from tests.deployments import test_event_streams as streams
from tests.deployments.test_event_streams import Frames, live_only, open_stream, store

running = streams.running  # its fixture: a deployment, its key and a running run with events 1-3

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("llm_clients_closed"),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis channel layer's (REDIS_URL)"),
]


@pytest.fixture
def sent(monkeypatch):
    """The groups the Redis channel layer was asked to send to."""
    groups: list[str] = []
    real = RedisChannelLayer.group_send

    async def recording(self, group, message):
        groups.append(group)
        return await real(self, group, message)

    monkeypatch.setattr(RedisChannelLayer, "group_send", recording)
    return groups


async def test_a_follower_connecting_mid_run_sees_every_event(running, sent):
    _, key, run = running
    fourth = await sync_to_async(store)(run, 4, "agent.completed")
    await publish_run_event(run.pk, event_frame(fourth))
    assert sent == []  # nobody follows: nothing sent

    frames = Frames(await open_stream(run, key))
    assert [(await frames.next())["seq"] for _ in range(4)] == [1, 2, 3, 4]  # replayed from the database

    await publish_run_event(run.pk, live_only(run, 5, "llm.delta"))  # on the channel layer only
    assert (await frames.next())["seq"] == 5
    assert sent == [run_group(run.pk)]

    await sync_to_async(store)(run, 5, "llm.delta")
    final = await sync_to_async(store)(run, 6, "run.completed")
    await publish_run_event(run.pk, event_frame(final))
    assert [frame["seq"] for frame in await frames.rest()] == [6]


async def test_a_group_its_last_member_left_is_sent_nothing_again(running, sent):
    _, _, run = running
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(run_group(run.pk), channel)
    event = await sync_to_async(store)(run, 4, "llm.delta")
    await publish_run_event(run.pk, event_frame(event))
    assert (await layer.receive(channel))["event"]["seq"] == 4

    await layer.group_discard(run_group(run.pk), channel)
    await publish_run_event(run.pk, event_frame(await RunEvent.objects.aget(run=run, seq=3)))
    assert sent == [run_group(run.pk)]
