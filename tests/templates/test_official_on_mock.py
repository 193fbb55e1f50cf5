"""What a new user does first, through the API alone: use every official template in an organization
with no provider (so every agent is on the offline `mock`) and run what it made, nothing scripted.
Every run completes, with every span completed, and every structured decision the patterns ask for
(a plan, a route, a verdict, a vote) names a real agent or value."""

from __future__ import annotations

import pytest

from agents.config_schema import parse_agent_config
from observability.models import Run, Span
from tests.templates.factories import assert_matches_outputs, load_official, sample_inputs
from tests.templates.test_official import AGENTS, ORCHESTRATION_FILES, read

pytestmark = pytest.mark.django_db(transaction=True)

ORCHESTRATIONS = {read(path)["slug"]: read(path) for path in ORCHESTRATION_FILES}


@pytest.fixture
def official(db):
    return load_official()


def use(client, kind: str, template) -> dict:
    response = client.post(f"/api/templates/{kind}/{template.pk}/use", {"name": "Mine"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def completed_run(body: dict) -> Run:
    """The stored run of a successful call: completed, and so is every one of its spans."""
    run = Run.objects.get(pk=body["run_id"])
    assert run.status == "completed" and run.trace_id == body["trace_id"]
    spans = Span.objects.filter(run=run)
    assert spans.exists() and not spans.exclude(status="completed").exists()
    return run


@pytest.mark.parametrize("slug", sorted(AGENTS))
def test_every_official_agent_template_runs_on_mock_through_the_api(auth_client, official, slug):
    made = use(auth_client, "agents", official[slug])
    assert made["provider"]["kind"] == "mock" and made["provider"]["fallback"] is True
    agent = made["agent"]
    config = parse_agent_config(agent["config_yaml"])

    response = auth_client.post(
        f"/api/agents/{agent['id']}/test", {"input": sample_inputs(config)}, format="json"
    )

    assert response.status_code == 200, response.content
    completed_run(response.json())
    assert_matches_outputs(response.json()["output"], config)


@pytest.mark.parametrize("slug", sorted(ORCHESTRATIONS))
def test_every_official_orchestration_template_runs_on_mock_through_the_api(auth_client, official, slug):
    made = use(auth_client, "orchestrations", official[slug])
    assert all(entry["provider"]["kind"] == "mock" for entry in made["agents"])
    orchestration = made["orchestration"]
    first = parse_agent_config(made["agents"][0]["agent"]["config_yaml"])

    response = auth_client.post(
        f"/api/orchestrations/{orchestration['id']}/execute", {"input": sample_inputs(first)}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
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
