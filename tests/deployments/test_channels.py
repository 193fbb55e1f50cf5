"""A deployment answers only on the channels it serves, and says so: the deploy answer, the detail
and the description show only the channels that are on; a channel that is off answers 404
`channel_off` whether it is HTTP, the CLI or MCP."""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from studio.asgi import application
from tests.deployments.helpers import INPUTS, answering_agent, bearer, deploy

pytestmark = pytest.mark.usefixtures("llm_clients_closed")

MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def post_deploy(client, agent, channels):
    response = client.post("/api/deploy", {"agent_id": agent.pk, "channels": channels}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db
def test_the_deploy_answer_holds_only_the_channels_that_are_on(admin_client_, admin_user, settings):
    agent = answering_agent(admin_user.organization)

    api_only = post_deploy(admin_client_, agent, ["api"])
    assert api_only["channels"] == ["api"]
    assert api_only["api_url"] == f"{settings.PUBLIC_URL}/workflows/{api_only['name']}/execute"
    assert not {"mcp_url", "mcp_command", "cli_command"} & set(api_only)

    no_api = post_deploy(admin_client_, agent, {"api": False, "mcp": True, "cli": True})
    assert no_api["channels"] == ["mcp", "cli"] and "api_url" not in no_api
    assert no_api["mcp_url"] == f"{settings.PUBLIC_URL}/mcp/{no_api['name']}"
    assert no_api["mcp_command"].startswith(f"claude mcp add --transport http {no_api['name']} ")
    assert no_api["cli_command"].startswith(f"studio execute {no_api['name']} ")

    detail = admin_client_.get(f"/api/deployments/{api_only['deployment_id']}").json()
    assert detail["api_url"] == api_only["api_url"]
    assert detail["mcp_url"] is None and detail["mcp_command"] is None and detail["cli_command"] is None
    listed = {row["id"]: row for row in admin_client_.get("/api/deployments").json()["results"]}
    assert listed[no_api["deployment_id"]]["api_url"] is None
    assert listed[no_api["deployment_id"]]["mcp_url"] == no_api["mcp_url"]


@pytest.mark.django_db
def test_channel_flags_must_be_booleans(admin_client_, admin_user):
    agent = answering_agent(admin_user.organization)
    response = admin_client_.post(
        "/api/deploy", {"agent_id": agent.pk, "channels": {"api": "yes", "mcp": True}}, format="json"
    )
    assert response.status_code == 400 and "channels" in response.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
async def test_a_channel_that_is_off_answers_404_saying_it_is_off(admin_user):
    client = AsyncClient()
    _, key = await sync_to_async(deploy)(admin_user, name="mcp-only", channels=["mcp"])
    api = await client.post(
        "/workflows/mcp-only/execute",
        json.dumps({"inputs": INPUTS}),
        content_type="application/json",
        headers=bearer(key),
    )
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "channel_off"
    assert api.json()["error"]["message"] == "The api channel of deployment 'mcp-only' is off."
    cli = await client.get("/workflows/mcp-only", headers={**bearer(key), "X-Studio-Channel": "cli"})
    assert cli.status_code == 404 and "cli channel" in cli.json()["error"]["message"]
    unknown = await client.get("/workflows/no-such-bot", headers=bearer(key))  # names cannot be probed
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_api_key"

    _, key = await sync_to_async(deploy)(admin_user, name="api-only", channels=["api"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    ) as http:
        mcp = await http.post("/mcp/api-only", json=MCP_INITIALIZE, headers={**MCP_HEADERS, **bearer(key)})
        served = await http.post("/mcp/mcp-only", json=MCP_INITIALIZE, headers={**MCP_HEADERS, **bearer(key)})
    assert mcp.status_code == 404
    assert mcp.json()["error"] == {
        "code": "channel_off",
        "message": "The mcp channel of deployment 'api-only' is off.",
        "fields": {},
    }
    assert served.status_code == 401  # served on MCP: this key is api-only's, not mcp-only's


@pytest.mark.django_db(transaction=True)
async def test_the_description_shows_only_the_urls_of_the_channels_that_are_on(admin_user, settings):
    _, key = await sync_to_async(deploy)(admin_user, name="cli-and-mcp", channels=["cli", "mcp"])
    response = await AsyncClient().get(
        "/workflows/cli-and-mcp", headers={**bearer(key), "X-Studio-Channel": "cli"}
    )
    assert response.status_code == 200
    assert response.json()["api_url"] is None
    assert response.json()["mcp_url"] == f"{settings.PUBLIC_URL}/mcp/cli-and-mcp"
