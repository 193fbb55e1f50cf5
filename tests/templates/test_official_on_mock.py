"""What a new user does first, through the API alone: use every official template in an organization
with no provider (so every agent is on the offline `mock`) and run what it made, nothing scripted
but a template's own `mock_responses`. A template with MCP server slots is given the real MCP
server of the tests (the official SDK's, on 127.0.0.1) for each; a run that waits for a person's
approval is approved through the API. Every run completes, with every span completed, and every
structured decision the patterns ask for (a plan, a route, a verdict, a vote) names a real agent or
value."""

from __future__ import annotations

import pytest

from agents.config_schema import parse_agent_config
from observability.models import Run, Span
from orchestrations.approvals import PAUSED
from orchestrations.models import Approval
from tests.agents.factories import make_mcp_server
from tests.templates.factories import assert_matches_outputs, load_official, sample_inputs
from tests.templates.test_official import AGENTS, ORCHESTRATION_FILES, read

pytestmark = pytest.mark.django_db(transaction=True)

ORCHESTRATIONS = {read(path)["slug"]: read(path) for path in ORCHESTRATION_FILES}


@pytest.fixture
def official(db):
    return load_official()


def use(client, kind: str, template, *, mcp_servers: dict | None = None) -> dict:
    body = {"name": "Mine", "mcp_servers": mcp_servers or {}}
    response = client.post(f"/api/templates/{kind}/{template.pk}/use", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def servers_for(client, template, request) -> dict:
    """The fake MCP server, registered in the caller's organization, for each slot `template` lists."""
    slots = client.get(f"/api/templates/agents/{template.pk}").json()["mcp_servers"]
    if not slots:
        return {}
    fake = request.getfixturevalue("fake_mcp")
    server = make_mcp_server(client.user.organization, url=fake.url, headers=fake.headers)
    return {entry["slot"]: server.pk for entry in slots}


def finished(client, response) -> dict:
    """The body of a call that finished: one that waits for an approval (202) is approved through
    the API, and its run read back."""
    if response.status_code == 202:
        body = response.json()
        assert body["status"] == "waiting", body
        decided = client.post(f"/api/approvals/{body['approval_id']}", {"decision": "approve"}, format="json")
        assert decided.status_code == 200, decided.content
        run = Run.objects.get(pk=body["run_id"])
        return {"run_id": run.pk, "trace_id": run.trace_id, "output": run.output}
    assert response.status_code == 200, response.content
    return response.json()


def completed_run(body: dict) -> Run:
    """The stored run of a successful call: completed, and so is every one of its spans (but those
    that paused for an approval, which end `paused`: the resumed run made their work again)."""
    run = Run.objects.get(pk=body["run_id"])
    assert run.status == "completed" and run.trace_id == body["trace_id"]
    spans = Span.objects.filter(run=run)
    paused = spans.filter(status=PAUSED)
    assert paused.exists() == Approval.objects.filter(run=run).exists()
    assert spans.exists() and not spans.exclude(status="completed").exclude(pk__in=paused).exists()
    return run


@pytest.mark.parametrize("slug", sorted(AGENTS))
def test_every_official_agent_template_runs_on_mock_through_the_api(auth_client, official, slug, request):
    servers = servers_for(auth_client, official[slug], request)
    made = use(auth_client, "agents", official[slug], mcp_servers=servers)
    assert made["provider"]["kind"] == "mock" and made["provider"]["fallback"] is True
    agent = made["agent"]
    config = parse_agent_config(agent["config_yaml"])

    response = auth_client.post(
        f"/api/agents/{agent['id']}/test", {"input": sample_inputs(config)}, format="json"
    )

    body = finished(auth_client, response)
    completed_run(body)
    assert_matches_outputs(body["output"], config)
    if servers:  # each approved tool call was made, once, on the real server
        fake = request.getfixturevalue("fake_mcp")
        script = official[slug].mock_responses
        scripted = [call["name"] for item in script for call in item.get("tool_calls", [])]
        assert [call.tool for call in fake.calls] == scripted


@pytest.mark.parametrize("slug", sorted(ORCHESTRATIONS))
def test_every_official_orchestration_template_runs_on_mock_through_the_api(auth_client, official, slug):
    made = use(auth_client, "orchestrations", official[slug])
    assert all(entry["provider"]["kind"] == "mock" for entry in made["agents"])
    orchestration = made["orchestration"]
    first = parse_agent_config(made["agents"][0]["agent"]["config_yaml"])

    response = auth_client.post(
        f"/api/orchestrations/{orchestration['id']}/execute", {"input": sample_inputs(first)}, format="json"
    )

    body = finished(auth_client, response)
    completed_run(body)
    names = [entry["agent"]["name"] for entry in made["agents"]]
    output = body["output"]
    pattern = ORCHESTRATIONS[slug]["pattern"]
    if pattern == "supervisor_worker":
        assert output["subtasks"] and all(s["worker"] in names[1:] for s in output["subtasks"])
    elif pattern == "router":
        assert output["specialist"] in names[1:]
    elif pattern == "debate":
        assert output["winner"] in [*names[:-1], "draw"]
    elif pattern == "consensus":
        assert output["reached"] is True
