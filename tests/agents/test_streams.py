"""Live agent streams over WebSockets: Channels' communicator and a real daphne server."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.services import tokens_for
from observability.models import Run
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

GOOD = {"response": "We will refund you today.", "priority": "high"}


async def connect(path, user):
    return await open_communicator(path, user=user)


async def receive_until_final(communicator, timeout=10):
    events = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        events.append(frame)
        if frame["type"] in ("run.completed", "run.failed"):
            return events


@pytest.fixture
def agent(member):
    return make_agent(member.organization, support_yaml(responses=[{"response": GOOD}]))


async def test_execute_streams_events_in_order_with_llm_deltas(member, agent):
    communicator, connected, _ = await connect(f"/api/agents/{agent.pk}/stream", member)
    assert connected
    await communicator.send_json_to({"type": "execute", "input": {"inquiry": "Refund please"}})
    events = await receive_until_final(communicator)
    types = [event["type"] for event in events]
    assert (
        types[0] == "run.started"
        and types[1] == "agent.started"
        and types[-2:] == ["agent.completed", "run.completed"]
    )
    deltas = [event["data"]["text"] for event in events if event["type"] == "llm.delta"]
    assert json.loads("".join(deltas)) == GOOD
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert len({event["run_id"] for event in events}) == 1
    assert events[-1]["data"]["output"] == GOOD
    await communicator.disconnect()


async def test_bad_input_and_malformed_frames_get_error_frames(member, agent):
    communicator, _, _ = await connect(f"/api/agents/{agent.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"nope": 1}})
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["error"]["code"] == "invalid_input"
    assert "inquiry" in error["error"]["fields"]
    await communicator.send_to(text_data="{{{")
    assert (await communicator.receive_json_from())["error"]["code"] == "malformed_frame"
    await communicator.send_json_to({"type": "cancel"})
    assert (await communicator.receive_json_from())["error"]["code"] == "no_run"
    assert not await Run.objects.aexists()
    await communicator.disconnect()


async def test_viewers_may_not_execute(viewer, member, agent):
    communicator, connected, _ = await connect(f"/api/agents/{agent.pk}/stream", viewer)
    assert connected
    await communicator.send_json_to({"type": "execute", "input": {"inquiry": "x"}})
    assert (await communicator.receive_json_from())["error"]["code"] == "permission_denied"
    await communicator.disconnect()


async def test_cancel_stops_the_run_and_records_it_as_cancelled(member):
    slow = await sync_to_async(make_agent)(
        member.organization, support_yaml(extra_provider="  latency_ms: 5000")
    )
    communicator, _, _ = await connect(f"/api/agents/{slow.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"inquiry": "x"}})
    started = await communicator.receive_json_from()
    assert started["type"] == "run.started"
    await communicator.send_json_to({"type": "cancel"})
    events = await receive_until_final(communicator)
    assert events[-1]["type"] == "run.failed" and events[-1]["data"]["status"] == "cancelled"
    run = await Run.objects.aget(pk=started["run_id"])
    assert run.status == "cancelled" and run.error["code"] == "cancelled"
    await communicator.disconnect()


async def test_a_disconnected_client_does_not_kill_the_run_and_can_replay(member):
    slowish = await sync_to_async(make_agent)(
        member.organization, support_yaml(responses=[{"response": GOOD}], extra_provider="  latency_ms: 300")
    )
    communicator, _, _ = await connect(f"/api/agents/{slowish.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"inquiry": "x"}})
    first = await communicator.receive_json_from()
    await communicator.disconnect()

    run_id = first["run_id"]
    for _ in range(100):
        if (await Run.objects.aget(pk=run_id)).status in Run.FINISHED:
            break
        await asyncio.sleep(0.05)
    assert (await Run.objects.aget(pk=run_id)).status == "completed"

    replay, connected, _ = await connect(f"/api/runs/{run_id}/stream?after_seq=1", member)
    assert connected
    events = await receive_until_final(replay)
    assert events[0]["seq"] == 2 and events[-1]["type"] == "run.completed"
    assert [e["seq"] for e in events] == list(range(2, 2 + len(events)))
    assert (await replay.receive_output(timeout=2))["type"] == "websocket.close"


async def test_following_a_live_run_replays_then_streams(member):
    slowish = await sync_to_async(make_agent)(
        member.organization, support_yaml(responses=[{"response": GOOD}], extra_provider="  latency_ms: 600")
    )
    runner, _, _ = await connect(f"/api/agents/{slowish.pk}/stream", member)
    await runner.send_json_to({"type": "execute", "input": {"inquiry": "x"}})
    run_id = (await runner.receive_json_from())["run_id"]
    follower, _, _ = await connect(f"/api/runs/{run_id}/stream", member)
    events = await receive_until_final(follower)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    await receive_until_final(runner)
    await runner.disconnect()


async def test_other_organizations_cannot_open_agents_or_runs(member, other_org_owner, agent):
    _, connected, code = await connect(f"/api/agents/{agent.pk}/stream", other_org_owner)
    assert not connected and code == 4404
    run = await Run.objects.acreate(
        organization_id=member.organization_id, kind="agent_test", agent_id=agent.pk
    )
    _, connected, code = await connect(f"/api/runs/{run.pk}/stream", other_org_owner)
    assert not connected and code == 4404


@pytest.mark.live
async def test_agent_stream_through_a_real_daphne_server(daphne_server, member, agent):
    token = await sync_to_async(lambda: tokens_for(member)["access"])()
    url = f"{daphne_server.ws_url}/api/agents/{agent.pk}/stream"
    async with websockets.connect(url, subprotocols=["bearer", token]) as socket:
        await socket.send(json.dumps({"type": "execute", "input": {"inquiry": "Refund please"}}))
        events = []
        while not events or events[-1]["type"] not in ("run.completed", "run.failed"):
            events.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
    assert events[-1]["type"] == "run.completed" and events[-1]["data"]["output"] == GOOD
    run_id = events[0]["run_id"]
    async with websockets.connect(f"{daphne_server.ws_url}/api/runs/{run_id}/stream?token={token}") as socket:
        replayed = [json.loads(frame) async for frame in socket]
    assert [e["seq"] for e in replayed] == [e["seq"] for e in events]
