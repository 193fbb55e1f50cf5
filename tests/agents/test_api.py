"""The agents API: create with validated configs, errors with paths, roles, isolation, filters,
delete, audit rows, and constant query counts."""

from __future__ import annotations

import pytest

from agents.models import Agent, AgentVersion
from deployments.models import Deployment
from observability.models import AuditLog
from orchestrations.models import Orchestration
from tests.accounts.factories import make_user
from tests.agents.agent_configs import agent_config, agent_yaml
from tests.agents.factories import make_agent
from tests.api_cases import APIResourceCases, Call
from tests.conftest import client_for
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db

MISSING_ID = "agent-" + "0" * 32


def create(client, **body):
    body.setdefault("name", "Support bot")
    body.setdefault("config_yaml", agent_yaml())
    return client.post("/api/agents", body, format="json")


def config_errors(response) -> dict[str, str]:
    """The `{path: message}` of a 400 invalid_config response."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert set(error["fields"]) == {"config_yaml"}
    return {item["path"]: item["message"] for item in error["fields"]["config_yaml"]}


class TestAgentAPI(APIResourceCases):
    list_path = "/api/agents"
    detail_path = "/api/agents/{pk}"
    reads = (
        Call("GET", "/api/agents/{pk}/versions"),
        Call("GET", "/api/agents/{pk}/code"),
        Call("POST", "/api/agents/validate", {"config_yaml": agent_yaml()}),
    )
    writes = (
        Call("POST", "/api/agents", {"name": "Support bot", "config_yaml": agent_yaml()}),
        Call("PATCH", "/api/agents/{pk}", {"name": "stolen"}),
        Call("DELETE", "/api/agents/{pk}"),
        Call("POST", "/api/agents/{pk}/versions/1.0.0/restore"),
        Call("POST", "/api/agents/{pk}/test", {"input": {"inquiry": "Where is my parcel?"}}),
    )
    list_queries = 2  # the caller, the page with its count
    detail_queries = 2  # the caller, the agent

    def make(self, organization):
        return make_agent(organization)


# --- create and read -----------------------------------------------------------------------------


def test_member_creates_an_agent_at_1_0_0_with_its_normalized_config_and_an_audit_row(auth_client, member):
    response = create(auth_client, agent_type="task", description="Answers tickets")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("agent-")
    assert (body["version"], body["status"], body["agent_type"], body["is_public"]) == (
        "1.0.0",
        "draft",
        "task",
        False,
    )
    assert body["created_by"] == member.pk
    assert body["organization_id"] == member.organization_id
    assert body["config_yaml"] == agent_yaml()
    # Defaults are filled in the normalized config.
    assert body["config"]["config"]["max_tokens"] == 1024
    assert body["config"]["config"]["strategy"] == "single_shot"
    assert body["config"]["signature"]["inputs"][0]["required"] is True
    agent = Agent.objects.get(pk=body["id"])
    assert agent.config == body["config"]
    row = AuditLog.objects.get(operation_type="create", record_id=agent.pk)
    assert row.user_id == member.pk and row.model_name == "Agent"
    assert row.changes["name"] == "Support bot" and row.changes["version"] == "1.0.0"


def test_create_takes_status_and_is_public(auth_client):
    body = create(auth_client, status="active", is_public=True).json()
    assert (body["status"], body["is_public"]) == ("active", True)


def test_retrieve_returns_the_agent_and_unknown_ids_are_404(auth_client, member):
    agent = make_agent(member.organization, created_by=member)
    body = auth_client.get(f"/api/agents/{agent.pk}").json()
    assert body["id"] == agent.pk and body["config"] == agent.config and body["created_by"] == member.pk
    assert auth_client.get(f"/api/agents/{MISSING_ID}").status_code == 404
    assert auth_client.get("/api/agents/not-an-id").status_code == 404


def test_missing_fields_and_bad_choices_are_validation_errors(auth_client):
    response = auth_client.post("/api/agents", {"config_yaml": agent_yaml()}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    response = create(auth_client, agent_type="wizard")
    assert response.status_code == 400 and "agent_type" in response.json()["error"]["fields"]
    assert not Agent.objects.exists()


# --- config errors through the API ---------------------------------------------------------------


def test_config_errors_are_400_invalid_config_with_every_path_and_nothing_is_saved(auth_client):
    config = agent_config(config={"temperature": 7, "strategy": "psychic"})
    config["signature"]["outputs"].append({"name": "priority", "type": "enum"})
    errors = config_errors(create(auth_client, config_yaml=agent_yaml(config)))
    assert set(errors) == {"config.temperature", "config.strategy", "signature.outputs[1].enum_values"}
    assert errors["config.temperature"] == "must be at least 0 and at most 2, got 7"
    assert not Agent.objects.exists()
    assert not AuditLog.objects.filter(model_name="Agent").exists()


BILLION_LAUGHS = "\n".join(
    ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]"
        for i in range(8)
    ]
)
HOSTILE_DOCUMENTS = {
    "billion_laughs": (BILLION_LAUGHS, "anchors and aliases are not allowed"),
    "python_object_tag": (
        "signature: !!python/object/apply:os.system ['echo pwned']\n",
        "tags are not allowed",
    ),
    "list_at_the_top": ("- signature\n- provider\n", "must be a mapping"),
    "one_megabyte": ("signature: '" + "x" * 1_000_000 + "'\n", "the limit is 65536"),
    "deep_nesting": ("signature: " + "[" * 200 + "]" * 200 + "\n", "nesting is deeper than"),
    "not_yaml": ("signature: [unclosed\n", "invalid YAML"),
}


@pytest.mark.parametrize("name", list(HOSTILE_DOCUMENTS))
def test_hostile_documents_are_a_400_with_a_path_never_a_500(auth_client, name):
    document, expected = HOSTILE_DOCUMENTS[name]
    response = create(auth_client, config_yaml=document)
    errors = config_errors(response)
    assert any(expected in message for message in errors.values()), errors
    assert not Agent.objects.exists()
    validated = auth_client.post("/api/agents/validate", {"config_yaml": document}, format="json").json()
    assert validated["valid"] is False
    assert {item["path"]: item["message"] for item in validated["errors"]} == errors


def test_validate_returns_the_normalized_config_and_never_saves(viewer_client):
    response = viewer_client.post("/api/agents/validate", {"config_yaml": agent_yaml()}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True and body["errors"] == []
    assert body["config"]["config"]["max_retries"] == 2
    assert not Agent.objects.exists() and not AuditLog.objects.exists()


def test_validate_lists_the_same_errors_as_create(auth_client):
    document = agent_yaml(config={"max_tokens": 0, "tempreature": 1})
    validated = auth_client.post("/api/agents/validate", {"config_yaml": document}, format="json").json()
    assert validated["valid"] is False and validated["config"] is None
    paths = {item["path"]: item["message"] for item in validated["errors"]}
    assert paths == config_errors(create(auth_client, config_yaml=document))
    assert "did you mean 'temperature'?" in paths["config.tempreature"]


def test_provider_id_must_be_an_active_config_of_that_kind_visible_to_the_caller(
    auth_client, member, other_org_owner
):
    def attempt(provider_id, kind="openai"):
        provider = {"provider": kind, "model": "gpt-4o-mini", "provider_id": provider_id}
        return create(auth_client, config_yaml=agent_yaml(provider=provider))

    foreign = make_provider_config(other_org_owner.organization, provider="openai")
    inactive = make_provider_config(member.organization, provider="openai", is_active=False)
    someone_elses = make_provider_config(
        member.organization, provider="openai", user=make_user(member.organization)
    )
    wrong_kind = make_provider_config(member.organization, provider="anthropic")
    for rejected in (foreign, inactive, someone_elses, wrong_kind):
        errors = config_errors(attempt(rejected.pk))
        assert errors == {"provider.provider_id": f"no openai provider {rejected.pk!r} in this organization"}
    org_wide = make_provider_config(member.organization, provider="openai")
    own = make_provider_config(member.organization, provider="openai", user=member)
    assert attempt(org_wide.pk).status_code == 201
    assert attempt(own.pk).status_code == 201


def test_tools_must_be_agents_of_the_same_organization(auth_client, member, other_org_owner):
    foreign = make_agent(other_org_owner.organization)
    mine = make_agent(member.organization)

    def with_tools(*agent_ids):
        tools = [{"agent_id": agent_id} for agent_id in agent_ids]
        return agent_yaml(config={"strategy": "react"}, tools=tools)

    errors = config_errors(create(auth_client, config_yaml=with_tools(mine.pk, foreign.pk, MISSING_ID)))
    assert errors == {
        "tools[1].agent_id": f"no agent {foreign.pk!r} in this organization",
        "tools[2].agent_id": f"no agent {MISSING_ID!r} in this organization",
    }
    validated = auth_client.post(
        "/api/agents/validate", {"config_yaml": with_tools(foreign.pk)}, format="json"
    )
    assert validated.json()["errors"][0]["path"] == "tools[0].agent_id"
    created = create(auth_client, config_yaml=with_tools(mine.pk))
    assert created.status_code == 201
    # An agent cannot be its own tool.
    agent_id = created.json()["id"]
    response = auth_client.patch(
        f"/api/agents/{agent_id}", {"config_yaml": with_tools(agent_id)}, format="json"
    )
    assert config_errors(response) == {"tools[0].agent_id": "an agent cannot be its own tool"}


# --- update and delete ---------------------------------------------------------------------------


def test_patch_of_plain_fields_changes_them_in_place_and_audits(auth_client, member):
    agent = make_agent(member.organization)
    response = auth_client.patch(
        f"/api/agents/{agent.pk}", {"name": "Renamed", "status": "active", "is_public": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["status"], body["is_public"], body["version"]) == (
        "Renamed",
        "active",
        True,
        "1.0.0",
    )
    assert not AgentVersion.objects.exists()
    row = AuditLog.objects.get(operation_type="update", record_id=agent.pk)
    assert row.changes == {"name": "Renamed", "status": "active", "is_public": True}
    # The same values again change nothing and write no audit row.
    auth_client.patch(f"/api/agents/{agent.pk}", {"name": "Renamed"}, format="json")
    assert AuditLog.objects.filter(operation_type="update", record_id=agent.pk).count() == 1


def test_patch_with_an_invalid_config_changes_nothing(auth_client, member):
    agent = make_agent(member.organization)
    response = auth_client.patch(
        f"/api/agents/{agent.pk}",
        {"name": "Renamed", "config_yaml": agent_yaml(config={"temperature": -1})},
        format="json",
    )
    assert set(config_errors(response)) == {"config.temperature"}
    agent.refresh_from_db()
    assert agent.name != "Renamed" and agent.version == "1.0.0"
    assert not AgentVersion.objects.exists()


def test_delete_removes_the_agent_and_its_versions_and_audits(auth_client, member):
    agent = make_agent(member.organization)
    auth_client.patch(
        f"/api/agents/{agent.pk}", {"config_yaml": agent_yaml(config={"temperature": 0.1})}, format="json"
    )
    assert AgentVersion.objects.filter(agent=agent).count() == 1
    assert auth_client.delete(f"/api/agents/{agent.pk}").status_code == 204
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.exists()
    row = AuditLog.objects.get(operation_type="delete", record_id=agent.pk)
    assert row.user_id == member.pk and row.changes == {"name": agent.name, "version": "1.0.1"}
    assert auth_client.delete(f"/api/agents/{agent.pk}").status_code == 404


def test_delete_is_refused_while_an_orchestration_lists_the_agent(auth_client, member):
    agent, other = make_agent(member.organization), make_agent(member.organization)
    Orchestration.objects.create(
        organization_id=member.organization_id,
        name="Pipeline",
        pattern="sequential",
        agent_ids=[other.pk, agent.pk],
    )
    response = auth_client.delete(f"/api/agents/{agent.pk}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "agent_in_use"
    assert "Pipeline" in response.json()["error"]["message"]
    assert Agent.objects.filter(pk=agent.pk).exists()


def test_delete_is_refused_while_a_running_deployment_serves_the_agent(auth_client, member):
    agent = make_agent(member.organization)
    Deployment.objects.create(
        organization_id=member.organization_id, name="support", agent_id=agent.pk, status="running"
    )
    response = auth_client.delete(f"/api/agents/{agent.pk}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "agent_in_use"
    Deployment.objects.update(status="stopped")
    assert auth_client.delete(f"/api/agents/{agent.pk}").status_code == 204


# --- roles and isolation -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "admin", "owner"])
def test_members_and_above_create_change_and_delete(role, organization):
    client = client_for(make_user(organization, role=role))
    agent_id = create(client).json()["id"]
    assert (
        client.patch(f"/api/agents/{agent_id}", {"description": "changed"}, format="json").status_code == 200
    )
    assert client.delete(f"/api/agents/{agent_id}").status_code == 204


# --- lists ---------------------------------------------------------------------------------------


def test_list_filters_by_status_and_type_and_searches_name_and_description(auth_client, member):
    org = member.organization
    triage = make_agent(org, name="Ticket triage", agent_type="classifier", status="active")
    summary = make_agent(
        org, name="Digest", description="Summarises long TICKET threads", agent_type="summarizer"
    )
    make_agent(org, name="Greeter", agent_type="chat", status="deprecated")

    def ids(query):
        response = auth_client.get(f"/api/agents?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=active") == {triage.pk}
    assert ids("agent_type=summarizer") == {summary.pk}
    assert ids("search=ticket") == {triage.pk, summary.pk}
    assert ids("search=ticket&status=draft") == {summary.pk}
    assert len(ids("")) == 3
    bad = auth_client.get("/api/agents?status=retired")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]


def test_list_is_newest_first_and_paginated(auth_client, member):
    agents = [make_agent(member.organization) for _ in range(3)]
    page = auth_client.get("/api/agents?limit=2").json()
    assert (page["count"], page["page"], page["limit"]) == (3, 1, 2)
    assert [row["id"] for row in page["results"]] == [agents[2].pk, agents[1].pk]
    assert set(page["results"][0]) >= {
        "config",
        "config_yaml",
        "version",
        "status",
        "created_by",
        "updated_at",
    }


@pytest.mark.parametrize("n", [1, 25])
def test_versions_list_query_count_is_constant(auth_client, member, django_assert_num_queries, n):
    agent = make_agent(member.organization)
    for version in range(n):
        AgentVersion.objects.create(agent=agent, version=f"0.{version}.0", config_yaml="", created_by=member)
    with django_assert_num_queries(3):  # the caller, the agent, the page with its count
        response = auth_client.get(f"/api/agents/{agent.pk}/versions?limit=100")
    assert response.status_code == 200 and response.json()["count"] == n
