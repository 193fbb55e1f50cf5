"""The MCP channel in process: the official client over httpx's ASGI transport into the app that
daphne serves (progress notifications, rate limits as tool errors, a redeploy seen by the next
request). test_live.py covers the same endpoint over real sockets."""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import sync_to_async
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agents.services import agent_update
from deployments import mcp_server
from deployments.models import Deployment
from deployments.services import deployment_redeploy
from observability.models import Run
from studio.asgi import application
from tests.agents.agent_configs import support_yaml
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer, deploy
from tests.deployments.test_admission_on_loop import another_process_writes
from tests.studio.test_redis_down import DEAD_REDIS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

URL = "http://127.0.0.1/mcp/{name}"


async def session_calls(name, key, calls, *, progress=None):
    """Opens a session and makes `calls` tool calls; returns (tools, results)."""
    transport = httpx.ASGITransport(app=application)
    async with (
        httpx.AsyncClient(transport=transport, headers=bearer(key), timeout=30) as http,
        streamable_http_client(URL.format(name=name), http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [
            await session.call_tool(tools[0].name, arguments, progress_callback=progress)
            for arguments in calls
        ]
        return tools, results


async def test_a_long_call_sends_progress_notifications(admin_user, monkeypatch):
    monkeypatch.setattr(mcp_server, "PROGRESS_EVERY_S", 0.2)
    agent = await sync_to_async(answering_agent)(admin_user.organization, extra_provider="  latency_ms: 900")
    _, key = await sync_to_async(deploy)(admin_user, agent, name="slow")
    seen = []

    async def progress(value, total, message):
        seen.append((value, message))

    _, (result,) = await session_calls("slow", key, [INPUTS], progress=progress)
    assert not result.isError and result.structuredContent == GOOD
    assert len(seen) >= 2
    assert [value for value, _ in seen] == sorted(value for value, _ in seen)
    assert seen[0][1].startswith("running for")


async def test_over_the_rate_limit_a_call_is_a_tool_error(admin_user):
    _, key = await sync_to_async(deploy)(admin_user, name="limited", rate_limit_per_minute=1)
    _, (first, second) = await session_calls("limited", key, [INPUTS, INPUTS])
    assert not first.isError
    assert second.isError
    error = json.loads(second.content[0].text)["error"]
    assert error["code"] == "rate_limited" and 1 <= error["retry_after"] <= 60
    assert await Run.objects.filter(deployment_id__startswith="deploy-").acount() == 1


async def test_listing_and_initializing_do_not_count_against_the_limit(admin_user):
    _, key = await sync_to_async(deploy)(admin_user, name="listed", rate_limit_per_minute=1)
    for _ in range(3):
        tools, _ = await session_calls("listed", key, [])
        assert [tool.name for tool in tools] == ["listed"]
    _, (result,) = await session_calls("listed", key, [INPUTS])
    assert not result.isError


async def test_a_redeploy_shows_in_the_next_request(admin_user):
    agent = await sync_to_async(answering_agent)(admin_user.organization)
    deployment, key = await sync_to_async(deploy)(admin_user, agent, name="evolving")
    v2 = support_yaml(responses=[{"response": GOOD}]).replace(
        "  inputs: [{name: inquiry, type: string, description: The customer question}]",
        "  inputs: [{name: inquiry, type: string}, {name: customer, type: string, required: false}]",
    )
    await sync_to_async(agent_update)(user=admin_user, agent=agent, config_yaml=v2)
    tools, _ = await session_calls("evolving", key, [])
    assert set(tools[0].inputSchema["properties"]) == {"inquiry"}
    await sync_to_async(deployment_redeploy)(user=admin_user, deployment=deployment)
    tools, (result,) = await session_calls("evolving", key, [INPUTS | {"customer": "Ada"}])
    assert set(tools[0].inputSchema["properties"]) == {"inquiry", "customer"}
    assert not result.isError


# --- admission from the event loop (deployments.calls.deployment_admit_and_begin_async) ----------


def admission_hops(hops: list[str]) -> list[str]:
    """The hops of a request that its admission, counting or breaker made (the ledger's are not)."""
    ours = ("deployment_admit", "deployment_call_begin", "_load", "CacheCircuitBreaker", "Redis")
    return [hop for hop in hops if hop.startswith(ours)]


async def test_a_tool_call_is_admitted_and_counted_without_a_thread_like_an_http_call(
    admin_user, thread_hops
):
    _, key = await sync_to_async(deploy)(admin_user, name="support")
    await session_calls("support", key, [INPUTS])  # the first request loads the key's entry
    thread_hops.clear()
    _, (result,) = await session_calls("support", key, [INPUTS])
    assert not result.isError and result.structuredContent == GOOD
    assert thread_hops, "the ledger's writes still take a worker thread: the counting does count"
    assert admission_hops(thread_hops) == []


async def test_a_stop_written_by_another_process_shows_in_the_next_request(admin_user):
    deployment, key = await sync_to_async(deploy)(admin_user, name="stopping")
    await session_calls("stopping", key, [INPUTS])
    await Deployment.objects.filter(pk=deployment.pk).aupdate(status=Deployment.Status.STOPPED)
    await sync_to_async(another_process_writes)(deployment)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, headers=bearer(key)) as http:
        response = await http.post(URL.format(name="stopping"), json={})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert await Run.objects.filter(deployment_id=deployment.pk).acount() == 1


async def test_with_redis_down_a_kept_key_s_tool_call_fails_closed_as_a_tool_error(admin_user, settings):
    deployment, key = await sync_to_async(deploy)(admin_user, name="support")
    await session_calls("support", key, [INPUTS])  # kept while the cache was up
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS}
    }
    _, (result,) = await session_calls("support", key, [INPUTS])
    assert result.isError
    assert json.loads(result.content[0].text)["error"]["code"] == "rate_limiter_unavailable"
    assert await Run.objects.filter(deployment_id=deployment.pk).acount() == 1
