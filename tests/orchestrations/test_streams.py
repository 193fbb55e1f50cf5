"""Live orchestration streams over WebSockets: Channels' communicator, reconnect-and-replay through
`/api/runs/{id}/stream`, and a real daphne server with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.services import tokens_for
from observability.models import Run, RunEvent, Span
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.orchestrations.helpers import (
    event_types,
    make_agent,
    make_orchestration,
    says,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("llm_clients_closed"),
]

FINAL = ("run.completed", "run.failed")


async def connect(path, user):
    return await open_communicator(path, user=user)


async def receive_until_final(communicator, timeout=10):
    events = []
    while not events or events[-1]["type"] not in FINAL:
        events.append(await communicator.receive_json_from(timeout=timeout))
    return events


async def wait_for(count, *, equals, timeout=5.0):
    """Polls the awaitable `count()` until it returns `equals`."""
    deadline = time.monotonic() + timeout
    while (value := await count()) != equals:
        assert time.monotonic() < deadline, f"still {value}, expected {equals}"
        await asyncio.sleep(0.02)


async def wait_until_finished(run_id, timeout=10.0):
    """The run once its final event is stored (its status is saved a moment before that event)."""
    deadline = time.monotonic() + timeout
    while not await RunEvent.objects.filter(run_id=run_id, type__in=FINAL).aexists():
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        await asyncio.sleep(0.05)
    return await Run.objects.aget(pk=run_id)


def _router(member, *, latency_ms=None):
    org = member.organization
    router = make_agent(org, "Router", responses=[says(answer="", route_to="Shipping")])
    billing = make_agent(org, "Billing", responses=[says(answer="Refunded")])
    shipping = make_agent(org, "Shipping", responses=[says(answer="In transit")], latency_ms=latency_ms)
    return make_orchestration(org, "router", [router, billing, shipping]), router, shipping


def _debate(member, *, latency_ms):
    org = member.organization
    pro = make_agent(org, "Pro", responses=[says(answer="For")], latency_ms=latency_ms)
    con = make_agent(org, "Con", responses=[says(answer="Against")], latency_ms=latency_ms)
    judge = make_agent(org, "Judge", responses=[says(answer="Pro wins", winner="Pro")])
    return make_orchestration(org, "debate", [pro, con, judge], config_yaml="rounds: 2\n")


async def test_execute_streams_every_event_through_run_completed(member):
    orchestration, router, shipping = await sync_to_async(_router)(member)
    communicator, connected, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    assert connected
    await communicator.send_json_to({"type": "execute", "input": {"text": "Where is my parcel?"}})
    events = await receive_until_final(communicator)

    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert len({event["run_id"] for event in events}) == 1
    assert all(set(event) == {"type", "run_id", "seq", "agent_id", "data", "timestamp"} for event in events)
    # The agents stream their answers as llm.delta text; without them the pattern's order is exact.
    deltas = [event for event in events if event["type"] == "llm.delta"]
    assert {event["agent_id"] for event in deltas} == {router.pk, shipping.pk}
    shipping_text = "".join(e["data"]["text"] for e in deltas if e["agent_id"] == shipping.pk)
    assert json.loads(shipping_text) == {"answer": "In transit"}
    assert [(e["type"], e["agent_id"]) for e in events if e["type"] != "llm.delta"] == [
        ("run.started", None),
        ("agent.started", router.pk),
        ("agent.completed", router.pk),
        ("pattern.step", None),
        ("agent.started", shipping.pk),
        ("agent.completed", shipping.pk),
        ("run.completed", None),
    ]
    step = next(event for event in events if event["type"] == "pattern.step")
    assert step["data"] == {
        "pattern": "router",
        "step": "route",
        "specialist": "Shipping",
        "requested": "Shipping",
        "fallback": False,
    }
    final = events[-1]["data"]
    assert final["status"] == "completed"
    assert final["output"] == {"specialist": "Shipping", "output": {"answer": "In transit"}}
    assert final["agents_executed"] == [router.pk, shipping.pk]
    run = await Run.objects.aget(pk=events[0]["run_id"])
    assert run.status == "completed" and run.orchestration_id == orchestration.pk and run.user_id == member.pk
    stored = [(e.seq, e.type) async for e in RunEvent.objects.filter(run=run).order_by("seq")]
    assert stored == [(event["seq"], event["type"]) for event in events]

    # The connection stays open for the next run, which is numbered from 1 again.
    await communicator.send_json_to({"type": "execute", "input": {"text": "Again"}})
    again = await receive_until_final(communicator)
    assert again[0]["seq"] == 1 and again[0]["run_id"] != run.pk and again[-1]["type"] == "run.completed"
    await communicator.disconnect()


async def test_a_second_execute_while_running_and_bad_frames_get_error_frames(member):
    orchestration = await sync_to_async(_debate)(member, latency_ms=300)
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": ["not", "an", "object"]})
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["error"]["code"] == "invalid_input"
    await communicator.send_to(text_data="{{{")
    assert (await communicator.receive_json_from())["error"]["code"] == "malformed_frame"
    await communicator.send_json_to({"type": "dance"})
    assert (await communicator.receive_json_from())["error"]["code"] == "unknown_type"
    assert not await Run.objects.aexists()

    await communicator.send_json_to({"type": "execute", "input": {"text": "Remote work?"}})
    assert (await communicator.receive_json_from())["type"] == "run.started"
    await communicator.send_json_to({"type": "execute", "input": {"text": "Another"}})
    frames = await receive_until_final(communicator)
    errors = [frame for frame in frames if frame["type"] == "error"]
    assert [frame["error"]["code"] for frame in errors] == ["run_in_progress"]
    events = [frame for frame in frames if frame["type"] != "error"]
    rounds = [
        e["data"]["round"] for e in events if e["type"] == "pattern.step" and e["data"]["step"] == "round"
    ]
    assert rounds == [1, 2]
    assert events[-1]["type"] == "run.completed" and events[-1]["data"]["output"]["winner"] == "Pro"
    assert await Run.objects.acount() == 1
    await communicator.disconnect()


async def test_cancel_stops_the_orchestration_and_its_agent_calls(member):
    def slow_parallel():
        org = member.organization
        agents = [make_agent(org, f"Slow {n}", latency_ms=60_000) for n in range(3)]
        return make_orchestration(org, "parallel", agents), agents

    orchestration, agents = await sync_to_async(slow_parallel)()
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"text": "x"}})
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "run.started"
    run_id = first["run_id"]
    await wait_for(lambda: Span.objects.filter(run_id=run_id, kind="llm").acount(), equals=3)
    await communicator.send_json_to({"type": "cancel"})
    clock = time.perf_counter()
    events = [first, *await receive_until_final(communicator)]
    assert time.perf_counter() - clock < 30  # nowhere near the 60 s the calls would take
    assert events[-1]["type"] == "run.failed"
    assert events[-1]["data"]["status"] == "cancelled" and events[-1]["data"]["error"]["code"] == "cancelled"
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs))

    run = await Run.objects.aget(pk=run_id)
    assert run.status == "cancelled" and run.error["code"] == "cancelled"
    stored = [e async for e in RunEvent.objects.filter(run=run).order_by("seq")]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    failed = [e for e in stored if e.type == "agent.failed"]
    assert sorted(e.agent_id for e in failed) == sorted(agent.pk for agent in agents)
    assert {e.data["code"] for e in failed} == {"cancelled"}
    agent_spans = [span async for span in Span.objects.filter(run=run, kind="agent")]
    assert sorted(span.agent_id for span in agent_spans) == sorted(agent.pk for agent in agents)
    assert all(span.status == "cancelled" and span.ended_at for span in agent_spans)
    # The llm calls' spans are closed as their streams are torn down, possibly a moment later.
    await wait_for(lambda: Span.objects.filter(run=run, ended_at__isnull=True).acount(), equals=0)
    statuses = {(span.kind, span.status) async for span in Span.objects.filter(run=run)}
    assert statuses == {
        ("run", "cancelled"),
        ("pattern", "cancelled"),
        ("agent", "cancelled"),
        ("llm", "cancelled"),
    }
    # Nothing left to cancel; the connection can run again.
    await communicator.send_json_to({"type": "cancel"})
    assert (await communicator.receive_json_from())["error"]["code"] == "no_run"
    await communicator.disconnect()


def _sequence(member, *, latency_ms):
    """Three agents one after another: no two agents emit events at the same time."""
    org = member.organization
    agents = [
        make_agent(org, name, responses=[says(answer=f"{name} done")], latency_ms=latency_ms)
        for name in ("Draft", "Edit", "Publish")
    ]
    return make_orchestration(org, "sequential", agents)


async def test_a_disconnected_client_reconnects_and_follows_the_rest_of_the_run_live(member):
    orchestration = await sync_to_async(_sequence)(member, latency_ms=1000)
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"text": "Write it"}})
    seen = [await communicator.receive_json_from() for _ in range(3)]
    await communicator.disconnect()
    run_id, last_seq = seen[0]["run_id"], seen[-1]["seq"]
    assert [e["seq"] for e in seen] == [1, 2, 3]

    # The run goes on without its client; the client comes back while it is still running and
    # gets the stored events after the last one it saw, then the live ones, without a gap.
    assert (await Run.objects.aget(pk=run_id)).status == "running"
    replay, connected, _ = await connect(f"/api/runs/{run_id}/stream?after_seq={last_seq}", member)
    assert connected
    rest = await receive_until_final(replay)
    assert [e["seq"] for e in rest] == list(range(last_seq + 1, last_seq + 1 + len(rest)))
    assert rest[-1]["type"] == "run.completed"
    assert rest[-1]["data"]["output"]["output"] == {"answer": "Publish done"}
    assert (await replay.receive_output(timeout=2))["type"] == "websocket.close"
    stored = [(e.seq, e.type) async for e in RunEvent.objects.filter(run_id=run_id).order_by("seq")]
    assert stored == [(e["seq"], e["type"]) for e in seen + rest]
    assert event_types(rest).count("pattern.step") >= 2


async def test_a_finished_run_replays_from_any_seq_and_closes(member):
    orchestration = await sync_to_async(_debate)(member, latency_ms=50)
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"text": "Remote work?"}})
    run_id = (await communicator.receive_json_from())["run_id"]
    await communicator.disconnect()  # leaves at once; the run is recorded all the same
    run = await wait_until_finished(run_id)
    assert run.status == "completed" and run.output["winner"] == "Pro"
    stored = [(e.seq, e.type) async for e in RunEvent.objects.filter(run_id=run_id).order_by("seq")]
    for after in (0, 5, len(stored) - 1):
        replay, _, _ = await connect(f"/api/runs/{run_id}/stream?after_seq={after}", member)
        events = await receive_until_final(replay)
        assert [(e["seq"], e["type"]) for e in events] == stored[after:]
        assert (await replay.receive_output(timeout=2))["type"] == "websocket.close"
    steps = [e.data["step"] async for e in RunEvent.objects.filter(run_id=run_id, type="pattern.step")]
    assert steps == ["round", "round", "verdict"]


async def test_a_live_client_receives_every_event_of_concurrent_agents(member):
    def wide_parallel():
        org = member.organization
        text = " ".join(f"word{n}" for n in range(30))
        agents = [make_agent(org, f"A{n}", responses=[says(answer=text)], latency_ms=200) for n in range(10)]
        return make_orchestration(org, "parallel", agents)

    orchestration = await sync_to_async(wide_parallel)()
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"text": "x"}})
    events = await receive_until_final(communicator)
    stored = await RunEvent.objects.filter(run_id=events[0]["run_id"]).acount()
    assert stored > 300  # ten agents streaming their answers word by word, at the same time
    assert [e["seq"] for e in events] == list(range(1, stored + 1))
    await communicator.disconnect()


async def test_a_quiet_run_stream_stays_open(member):
    run = await Run.objects.acreate(
        organization_id=member.organization_id, kind="orchestration", status="running"
    )
    follower, connected, _ = await connect(f"/api/runs/{run.pk}/stream", member)
    assert connected
    await asyncio.sleep(6.5)  # a slow provider: no event for longer than 5 s
    await follower.send_json_to({"type": "ping"})
    assert (await follower.receive_json_from(timeout=3))["error"]["code"] == "unknown_type"
    await follower.disconnect()


async def test_a_runs_stream_cannot_execute(member):
    # The run is still going when the follower's frame comes (a finished run's stream closes).
    orchestration, _, _ = await sync_to_async(_router)(member, latency_ms=1000)
    runner, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await runner.send_json_to({"type": "execute", "input": {"text": "x"}})
    run_id = (await runner.receive_json_from())["run_id"]
    follower, _, _ = await connect(f"/api/runs/{run_id}/stream", member)
    await follower.send_json_to({"type": "execute", "input": {}})
    frames = await receive_until_final(follower)
    assert [f["error"]["code"] for f in frames if f["type"] == "error"] == ["unknown_type"]
    events = [f for f in frames if f["type"] != "error"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    await receive_until_final(runner)
    await runner.disconnect()


async def test_viewers_may_watch_but_not_execute(viewer):
    orchestration, _, _ = await sync_to_async(_router)(viewer)
    communicator, connected, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", viewer)
    assert connected
    await communicator.send_json_to({"type": "execute", "input": {"text": "x"}})
    assert (await communicator.receive_json_from())["error"]["code"] == "permission_denied"
    assert not await Run.objects.aexists()
    await communicator.disconnect()


async def test_other_organizations_and_anonymous_clients_are_refused(member, other_org_owner):
    orchestration, _, _ = await sync_to_async(_router)(member)
    _, connected, code = await connect(f"/api/orchestrations/{orchestration.pk}/stream", other_org_owner)
    assert not connected and code == 4404
    _, connected, code = await open_communicator(f"/api/orchestrations/{orchestration.pk}/stream")
    assert not connected and code == 4401
    run = await Run.objects.acreate(
        organization_id=member.organization_id, kind="orchestration", orchestration_id=orchestration.pk
    )
    _, connected, code = await connect(f"/api/runs/{run.pk}/stream", other_org_owner)
    assert not connected and code == 4404


async def test_an_orchestration_whose_agent_was_deleted_answers_with_an_error_frame(member):
    orchestration, _, shipping = await sync_to_async(_router)(member)
    shipping_id = shipping.pk
    await shipping.adelete()
    communicator, _, _ = await connect(f"/api/orchestrations/{orchestration.pk}/stream", member)
    await communicator.send_json_to({"type": "execute", "input": {"text": "x"}})
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["error"]["code"] == "agent_missing"
    assert shipping_id in error["error"]["message"]
    assert not await Run.objects.aexists()
    await communicator.disconnect()


@pytest.mark.live
async def test_orchestration_stream_and_replay_through_a_real_daphne_server(daphne_server, member):
    orchestration = await sync_to_async(_sequence)(member, latency_ms=100)
    token = await sync_to_async(lambda: tokens_for(member)["access"])()
    url = f"{daphne_server.ws_url}/api/orchestrations/{orchestration.pk}/stream"
    async with websockets.connect(url, subprotocols=["bearer", token]) as socket:
        assert socket.subprotocol == "bearer"
        await socket.send(json.dumps({"type": "execute", "input": {"text": "Write it"}}))
        seen = [json.loads(await asyncio.wait_for(socket.recv(), 10)) for _ in range(4)]
    # The client went away after four events; the server goes on with the run. Reconnect at once
    # and follow the rest (replay after seq 4, then live) until the server closes the stream.
    run_id = seen[0]["run_id"]
    replay_url = f"{daphne_server.ws_url}/api/runs/{run_id}/stream?after_seq={seen[-1]['seq']}&token={token}"
    async with websockets.connect(replay_url) as socket:
        rest = [json.loads(frame) async for frame in socket]
    events = seen + rest
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["run_id"] for e in events}) == 1
    assert events[-1]["type"] == "run.completed"
    assert events[-1]["data"]["output"]["output"] == {"answer": "Publish done"}
    steps = [(e["data"]["step"], e["data"]["position"]) for e in events if e["type"] == "pattern.step"]
    assert steps == [("step", 1), ("step", 2), ("step", 3)]
    assert any(e["type"] == "llm.delta" for e in events)
    run = await wait_until_finished(run_id)
    assert run.status == "completed"
    stored = [(e.seq, e.type) async for e in RunEvent.objects.filter(run_id=run_id).order_by("seq")]
    assert stored == [(e["seq"], e["type"]) for e in events]
