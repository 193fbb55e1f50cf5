"""Deployments on a real daphne server: the management API and the HTTP channel with httpx, the MCP
channel with the official `mcp` client over streamable HTTP, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from accounts.services import tokens_for
from observability.models import Run
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer, deploy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

ROOT = Path(__file__).resolve().parents[2]
STUDIO = ROOT / ".venv" / "bin" / "studio"


@pytest.fixture
def admin_http(daphne_server, admin_user):
    """The management API of the live server as the organization's admin."""
    token = tokens_for(admin_user)["access"]
    with httpx.Client(base_url=daphne_server.url, headers=bearer(token), timeout=30) as client:
        yield client


@pytest.fixture
def deployed(admin_http, admin_user):
    agent = answering_agent(admin_user.organization)
    response = admin_http.post("/api/deploy", json={"agent_id": agent.pk, "name": "live-support"})
    assert response.status_code == 201, response.text
    return response.json()


def call_http(server, name, key, inputs=INPUTS):
    return httpx.post(
        f"{server.url}/workflows/{name}/execute", json={"inputs": inputs}, headers=bearer(key), timeout=30
    )


def run_cli(*args, env=None):
    """The `studio` console script in a subprocess (PYTHONPATH: the editable install may predate
    the package)."""
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    command = [str(STUDIO)] if STUDIO.exists() else [sys.executable, "-m", "deployments.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


async def mcp_session_call(url, key, *, arguments=INPUTS, progress=None):
    """Initialize, list the tools and call the first one; returns (tools, result)."""
    async with (
        httpx.AsyncClient(headers=bearer(key), timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        tools = (await session.list_tools()).tools
        result = await session.call_tool(tools[0].name, arguments, progress_callback=progress)
        return initialized, tools, result


def mcp_status(url, key) -> int:
    """The HTTP status of an MCP initialize request (what a refused client sees)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {**(bearer(key) if key else {}), "Accept": "application/json, text/event-stream"}
    return httpx.post(url, json=body, headers=headers, timeout=30).status_code


# --- the HTTP channel ----------------------------------------------------------------------------


def test_the_http_channel_serves_calls_and_describes_the_deployment(daphne_server, deployed):
    response = call_http(daphne_server, "live-support", deployed["api_key"])
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == GOOD
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.kind == "deployment" and run.deployment_id == deployed["deployment_id"]
    assert deployed["api_url"] == f"{daphne_server.url}/workflows/live-support/execute"
    described = httpx.get(f"{daphne_server.url}/workflows/live-support", headers=bearer(deployed["api_key"]))
    assert described.json()["input_schema"]["required"] == ["inquiry"]
    bad = call_http(daphne_server, "live-support", deployed["api_key"], inputs={"inquiry": 42})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"


def test_deploy_call_stop_start_and_rotate_keys_across_all_channels(daphne_server, admin_http, deployed):
    name, key, deployment_id = "live-support", deployed["api_key"], deployed["deployment_id"]
    mcp_url = deployed["mcp_url"]
    assert call_http(daphne_server, name, key).status_code == 200
    assert (
        run_cli("execute", name, "--url", daphne_server.url, "--key", key, "-i", "inquiry=Hi").returncode == 0
    )

    # Stopped: 404 on every channel.
    assert admin_http.delete(f"/api/deployments/{deployment_id}").json()["status"] == "stopped"
    assert call_http(daphne_server, name, key).status_code == 404
    assert mcp_status(mcp_url, key) == 404
    cli = run_cli("execute", name, "--url", daphne_server.url, "--key", key, "-i", "inquiry=Hi")
    assert cli.returncode == 1 and "No running deployment" in cli.stderr and "HTTP 404" in cli.stderr

    # Started again: served again.
    assert admin_http.post(f"/api/deployments/{deployment_id}/start").json()["status"] == "running"
    assert call_http(daphne_server, name, key).status_code == 200
    assert mcp_status(mcp_url, key) == 200

    # A second key works next to the first until the first is revoked.
    new = admin_http.post(f"/api/deployments/{deployment_id}/keys").json()
    assert call_http(daphne_server, name, new["api_key"]).status_code == 200
    assert call_http(daphne_server, name, key).status_code == 200
    old_key_id = next(
        k["id"]
        for k in admin_http.get(f"/api/deployments/{deployment_id}").json()["keys"]
        if k["id"] != new["id"]
    )
    assert admin_http.delete(f"/api/deployments/{deployment_id}/keys/{old_key_id}").status_code == 200
    assert call_http(daphne_server, name, key).status_code == 401
    assert mcp_status(mcp_url, key) == 401
    assert call_http(daphne_server, name, new["api_key"]).status_code == 200
    usage = admin_http.get(f"/api/deployments/{deployment_id}").json()["usage"]
    assert usage["runs"] == 6 and usage["completed"] == 6 and usage["total_tokens"] > 0


def test_redeploy_changes_what_live_callers_get(daphne_server, admin_http, admin_user, deployed):
    deployment_id = deployed["deployment_id"]
    detail = admin_http.get(f"/api/deployments/{deployment_id}").json()
    v2 = GOOD | {"response": "Second version."}
    patched = admin_http.patch(
        f"/api/agents/{detail['agent_id']}", json={"config_yaml": support_yaml(responses=[{"response": v2}])}
    )
    assert patched.status_code == 200 and patched.json()["version"] == "1.0.1"
    assert call_http(daphne_server, "live-support", deployed["api_key"]).json()["outputs"] == GOOD
    assert admin_http.post(f"/api/deployments/{deployment_id}/redeploy").json()["pinned_version"] == "1.0.1"
    assert call_http(daphne_server, "live-support", deployed["api_key"]).json()["outputs"] == v2


# --- the MCP channel -----------------------------------------------------------------------------


async def test_the_mcp_channel_lists_one_tool_and_calls_it_with_structured_output(daphne_server, deployed):
    initialized, tools, result = await mcp_session_call(deployed["mcp_url"], deployed["api_key"])
    assert initialized.serverInfo.name == "kaizen-studio/live-support"
    assert initialized.serverInfo.version == "1.0.0"
    assert [tool.name for tool in tools] == ["live-support"]
    tool = tools[0]
    assert tool.title == "Support" and tool.description == "Answers customers"
    assert tool.inputSchema["properties"]["inquiry"]["type"] == "string"
    assert tool.inputSchema["required"] == ["inquiry"]
    assert tool.outputSchema["properties"]["priority"]["enum"] == ["low", "high"]
    assert not result.isError
    assert result.structuredContent == GOOD
    assert json.loads(result.content[0].text) == GOOD
    run = await Run.objects.aget(pk=result.meta["run_id"])
    assert run.kind == "deployment" and run.deployment_id == deployed["deployment_id"]


async def test_mcp_failures_are_tool_errors_not_transport_failures(daphne_server, deployed):
    _, _, result = await mcp_session_call(
        deployed["mcp_url"], deployed["api_key"], arguments={"inquiry": 7, "extra": True}
    )
    assert result.isError and result.structuredContent is None
    error = json.loads(result.content[0].text)["error"]
    assert error["code"] == "invalid_input" and set(error["fields"]) == {"inquiry", "extra"}


async def test_mcp_refuses_bad_keys_and_unknown_or_stopped_deployments(daphne_server, admin_http, deployed):
    url, key = deployed["mcp_url"], deployed["api_key"]
    assert await sync_to_async(mcp_status)(url, None) == 401
    assert await sync_to_async(mcp_status)(url, key[:-3] + "xyz") == 401
    assert await sync_to_async(mcp_status)(f"{daphne_server.url}/mcp/no-such-bot", key) == 401  # no probing
    # The official client gives up at once with the HTTP status (inside its task group).
    with pytest.raises(ExceptionGroup) as refused:
        await mcp_session_call(url, "sk_deploy_wrongwrongwrong")
    (error,) = refused.value.exceptions
    assert isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 401
    await sync_to_async(admin_http.delete)(f"/api/deployments/{deployed['deployment_id']}")
    assert await sync_to_async(mcp_status)(url, key) == 404


# --- the CLI -------------------------------------------------------------------------------------


def test_the_cli_prints_outputs_as_json_and_reads_the_environment(daphne_server, deployed):
    env = {**os.environ, "STUDIO_URL": daphne_server.url, "STUDIO_API_KEY": deployed["api_key"]}
    done = run_cli("execute", "live-support", "--input", "inquiry=Where is my refund?", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == GOOD
    run = Run.objects.filter(deployment_id=deployed["deployment_id"]).get()
    assert run.input == INPUTS

    from_json = run_cli("execute", "live-support", "--json", json.dumps(INPUTS), env=env)
    assert from_json.returncode == 0 and json.loads(from_json.stdout) == GOOD


def test_the_cli_streams_progress_and_then_prints_the_outputs(daphne_server, deployed):
    done = run_cli(
        "execute",
        "live-support",
        "--url",
        daphne_server.url,
        "--key",
        deployed["api_key"],
        "--input",
        "inquiry=Refund?",
        "--stream",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == GOOD
    assert "» run started" in done.stderr and "✓ Support completed" in done.stderr
    assert "» run completed" in done.stderr
    assert "We will refund you today." in done.stderr  # the streamed model text


def test_the_cli_explains_errors_with_a_non_zero_exit(daphne_server, deployed):
    base = ["--url", daphne_server.url, "--key", deployed["api_key"]]
    invalid = run_cli("execute", "live-support", *base, "--input", "inquiry:=3")
    assert invalid.returncode == 1 and "invalid_input" in invalid.stderr and "inquiry" in invalid.stderr
    assert invalid.stdout == ""
    wrong_key = run_cli("execute", "live-support", "--url", daphne_server.url, "--key", "sk_deploy_nope12345")
    assert wrong_key.returncode == 1 and "HTTP 401" in wrong_key.stderr
    usage = run_cli("execute", "live-support", *base, "--input", "no-equals-sign")
    assert usage.returncode == 2 and "field=value" in usage.stderr
    unreachable = run_cli("execute", "live-support", "--url", "http://127.0.0.1:9", "--key", "k", "-i", "a=b")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr


def test_the_cli_lists_deployments_with_an_access_token(daphne_server, admin_user, deployed):
    token = tokens_for(admin_user)["access"]
    listing = run_cli("deployments", "list", "--url", daphne_server.url, "--token", token)
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "KIND"]
    assert row.split()[:4] == ["live-support", "running", "agent", "1.0.0"]


def test_the_cli_lists_a_deployment_without_the_api_channel(daphne_server, admin_user):
    deploy(admin_user, name="live-mcp-only", channels=["mcp"])
    token = tokens_for(admin_user)["access"]
    listing = run_cli("deployments", "list", "--url", daphne_server.url, "--token", token)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[1].split() == ["live-mcp-only", "running", "agent", "1.0.0", "-"]


def test_a_failing_streamed_run_exits_non_zero_with_the_reason(daphne_server, admin_http, admin_user):
    agent = make_agent(
        admin_user.organization, support_yaml(responses=[{"error": "provider_error", "message": "down"}])
    )
    deployed = admin_http.post("/api/deploy", json={"agent_id": agent.pk, "name": "live-flaky"}).json()
    done = run_cli(
        "execute",
        "live-flaky",
        "--url",
        daphne_server.url,
        "--key",
        deployed["api_key"],
        "--input",
        "inquiry=Hi",
        "--stream",
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "» run failed" in done.stderr and "(provider_error)" in done.stderr
