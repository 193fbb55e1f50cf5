"""With the channel layer down, a run's follower reads its events from the database instead: the
poller is background work of the socket, so a poller that fails is logged with its traceback, not
left as an exception nobody retrieves."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from observability.consumers import RunFollowingConsumer
from observability.models import RunEvent
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.observability.factories import queued_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer_down(monkeypatch):
    async def unavailable(self, group, channel):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(type(get_channel_layer()), "group_add", unavailable)


def finished_run(member):
    run = queued_run(organization_id=member.organization_id, user=member, status="completed")
    for seq, kind in enumerate(("run.started", "run.completed"), start=1):
        RunEvent.objects.create(run=run, seq=seq, type=kind)
    return run


async def test_with_the_layer_down_a_follower_gets_the_stored_events(member, layer_down):
    run = await sync_to_async(finished_run)(member)

    communicator, connected, _ = await open_communicator(f"/api/runs/{run.pk}/stream", user=member)

    assert connected
    frames = [await communicator.receive_json_from(timeout=10) for _ in range(2)]
    assert [(frame["seq"], frame["type"]) for frame in frames] == [(1, "run.started"), (2, "run.completed")]


async def test_a_failing_poller_is_logged_with_its_traceback(member, layer_down, monkeypatch, caplog):
    run = await sync_to_async(finished_run)(member)
    failed = asyncio.Event()

    async def broken_read(self, run_id):
        failed.set()
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(RunFollowingConsumer, "_send_stored", broken_read)

    with caplog.at_level(logging.ERROR, logger="studio.background"):
        communicator, connected, _ = await open_communicator(f"/api/runs/{run.pk}/stream", user=member)
        assert connected
        await asyncio.wait_for(failed.wait(), 10)
        for _ in range(50):  # the task's end is reported on a later turn of the loop
            if caplog.records:
                break
            await asyncio.sleep(0.02)

    (logged,) = caplog.records
    assert "failed" in logged.getMessage() and str(logged.exc_info[1]) == "database unreachable"
    await communicator.disconnect()
