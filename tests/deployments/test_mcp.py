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
from deployments.services import deployment_redeploy
from observability.models import Run
from studio.asgi import application
from tests.agents.agent_configs import support_yaml
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer, deploy

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
