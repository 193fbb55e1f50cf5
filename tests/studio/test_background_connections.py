"""Background work owns its database connections: a live server with a small pool serves every
run path after many background runs (async deployment calls, WebSocket runs), and no background
task's exception goes unretrieved."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.services import tokens_for
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer
from tests.deployments.test_live import mcp_session_call
from tests.live import DaphneServer
from tests.orchestrations.helpers import make_orchestration

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

POOL_SIZE = 5
ASYNC_CALLS = 8 * POOL_SIZE
TIMEOUT_S = 20  # below the pool's 30 s wait: a call that cannot get a connection fails the test


@pytest.fixture
def small_pool_server():
    server = DaphneServer(
        extra_env={"STUDIO_DB_POOL_SIZE": str(POOL_SIZE), "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1"}
    )
    yield server
    server.stop()


def _wait_finished(client: httpx.Client, run_url: str) -> dict:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        run = client.get(run_url).json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"{run_url} did not finish")


async def _websocket_run(server: DaphneServer, agent_id: str, token: str) -> list[dict]:
    url = f"{server.ws_url}/api/agents/{agent_id}/stream"
    async with websockets.connect(url, subprotocols=["bearer", token]) as socket:
        await socket.send(json.dumps({"type": "execute", "input": INPUTS}))
        events = []
        while not events or events[-1]["type"] not in ("run.completed", "run.failed"):
            events.append(json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT_S)))
    return events


def test_every_run_path_answers_after_many_background_runs_on_a_small_pool(small_pool_server, admin_user):
    server = small_pool_server
    agent = answering_agent(admin_user.organization)
    orchestration = make_orchestration(admin_user.organization, "sequential", [agent, agent])
    token = tokens_for(admin_user)["access"]
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=TIMEOUT_S) as api:
        deployed = api.post(
            "/api/deploy",
            json={
                "agent_id": agent.pk,
                "name": "pooled",
                "rate_limit_per_minute": 1000,
                "channels": {"api": True, "mcp": True, "cli": True},
            },
        )
        assert deployed.status_code == 201, deployed.text
        key = deployed.json()["api_key"]
        with httpx.Client(base_url=server.url, headers=bearer(key), timeout=TIMEOUT_S) as caller:
            accepted = [
                caller.post("/workflows/pooled/execute?async=1", json={"inputs": INPUTS})
                for _ in range(ASYNC_CALLS)
            ]
            assert [response.status_code for response in accepted] == [202] * ASYNC_CALLS
            for response in accepted:
                assert _wait_finished(caller, response.json()["run_url"])["status"] == "completed"

            for _ in range(POOL_SIZE + 1):
                sync_call = caller.post("/workflows/pooled/execute", json={"inputs": INPUTS})
                assert sync_call.status_code == 200, sync_call.text
            with caller.stream("GET", accepted[0].json()["events_url"]) as stream:
                frames = [line for line in stream.iter_lines() if line.startswith("event:")]
            assert frames[-1] == "event: run.completed"

        for _ in range(POOL_SIZE + 1):
            tested = api.post(f"/api/agents/{agent.pk}/test", json={"input": INPUTS})
            assert tested.status_code == 200, tested.text
        executed = api.post(f"/api/orchestrations/{orchestration.pk}/execute", json={"input": INPUTS})
        assert executed.status_code == 200, executed.text

        for _ in range(POOL_SIZE + 1):
            events = asyncio.run(_websocket_run(server, agent.pk, token))
            assert events[-1]["type"] == "run.completed" and events[-1]["data"]["output"] == GOOD
        _, _, result = asyncio.run(mcp_session_call(f"{server.url}/mcp/pooled", key))
        assert not result.isError and result.structuredContent == GOOD

        assert api.get("/api/health").status_code == 200

    log = Path(server.log.name).read_text()
    assert "never retrieved" not in log
    assert "can only be used in that same thread" not in log
    assert "Traceback" not in log, log[-3000:]


async def test_a_failing_background_task_is_logged_with_its_traceback(caplog):
    from studio.background import spawn

    async def explode():
        raise RuntimeError("boom in the background")

    task = spawn(explode, name="exploding")
    await asyncio.wait([task])
    await asyncio.sleep(0)
    records = [record for record in caplog.records if record.name == "studio.background"]
    assert records and "exploding" in records[0].getMessage()
    assert records[0].exc_info[1].args == ("boom in the background",)


@pytest.mark.django_db(transaction=True)
async def test_a_background_task_uses_a_connection_of_its_own_and_closes_it():
    from django.db import connections

    from studio.background import spawn

    seen = {}

    def touch_database():
        from accounts.models import Organization

        Organization.objects.count()
        seen["wrapper"] = connections["default"]
        seen["open"] = connections["default"].connection is not None

    await sync_to_async(touch_database)()
    mine = seen["wrapper"]
    await spawn(sync_to_async(touch_database), name="reader")
    assert seen["wrapper"] is not mine  # not the starter's connection
    assert seen["open"] and seen["wrapper"].connection is None  # used, then closed


@pytest.mark.django_db(transaction=True)
async def test_periodic_work_goes_on_after_a_failing_round_and_holds_no_connection_between_rounds(caplog):
    from django.db import connections

    from studio.background import every

    rounds, wrappers = [], []

    def count_organizations():
        from accounts.models import Organization

        Organization.objects.count()
        wrappers.append(connections["default"])
        rounds.append(len(rounds) + 1)
        if len(rounds) == 1:
            raise RuntimeError("the database is down for a while")

    task = every(0.01, sync_to_async(count_organizations), name="counting")
    try:
        while len(rounds) < 3:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert rounds[:3] == [1, 2, 3]  # the failed first round did not stop the next ones
    assert all(wrapper.connection is None for wrapper in wrappers)  # each round closed its own
    failures = [record for record in caplog.records if record.name == "studio.background"]
    assert failures and "counting" in failures[0].getMessage()
