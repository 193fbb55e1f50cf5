"""The templates API: the gallery (official + own, never another organization's), using templates,
saving an agent as a template, roles and query counts."""

from __future__ import annotations

import pytest

from agents.models import Agent
from observability.models import AuditLog
from orchestrations.models import Orchestration
from orchestrations.patterns import validate_pattern_config
from templates.models import AgentTemplate, OrchestrationTemplate
from tests.agents.agent_configs import agent_yaml
from tests.agents.factories import make_agent
from tests.api_cases import APIResourceCases, Call
from tests.conftest import client_for
from tests.providers.factories import make_provider_config
from tests.templates.factories import load_official, make_agent_template

pytestmark = pytest.mark.django_db

AGENTS_URL = "/api/templates/agents"
ORCHESTRATIONS_URL = "/api/templates/orchestrations"


@pytest.fixture
def official(db):
    return load_official()


class TestAgentTemplateAPI(APIResourceCases):
    list_path = AGENTS_URL
    detail_path = f"{AGENTS_URL}/{{pk}}"
    writes = (
        Call("POST", AGENTS_URL, {"agent_id": "agent-" + "0" * 32, "name": "Mine", "category": "support"}),
        Call("POST", f"{AGENTS_URL}/{{pk}}/use", {"name": "Nope"}),
    )
    list_queries = 2  # the caller, the page with its count
    detail_queries = 2  # the caller, the template

    def make(self, organization):
        return make_agent_template(organization)


class TestOrchestrationTemplateAPI(APIResourceCases):
    list_path = ORCHESTRATIONS_URL
    detail_path = f"{ORCHESTRATIONS_URL}/{{pk}}"
    writes = (Call("POST", f"{ORCHESTRATIONS_URL}/{{pk}}/use", {"name": "Nope"}),)
    list_queries = 3  # the caller, the page with its count, the agent template names
    detail_queries = 3  # the caller, the template, its agent template names

    def make(self, organization):
        roles = [make_agent_template(organization) for _ in range(2)]
        return OrchestrationTemplate.objects.create(
            organization=organization,
            name="Our pipeline",
            pattern="sequential",
            config=validate_pattern_config("sequential", {}, agent_count=len(roles)),
            agent_template_ids=[template.pk for template in roles],
        )


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_the_gallery_shows_official_and_own_templates_never_another_organizations(
    viewer, other_org_owner, official
):
    mine = make_agent_template(viewer.organization, name="Our triage")
    theirs = make_agent_template(other_org_owner.organization, name="Their triage")
    client = client_for(viewer)

    listed = ids(client.get(f"{AGENTS_URL}?limit=100"))

    official_ids = set(AgentTemplate.objects.filter(is_official=True).values_list("pk", flat=True))
    assert listed == official_ids | {mine.pk}
    assert theirs.pk not in ids(client.get(f"{AGENTS_URL}?limit=100&search=triage"))
    assert client.get(f"{AGENTS_URL}/{mine.pk}").json()["organization_id"] == viewer.organization_id
    response = client.get(f"{AGENTS_URL}/{theirs.pk}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    use = client_for(other_org_owner).post(f"{AGENTS_URL}/{mine.pk}/use", {"name": "X"}, format="json")
    assert use.status_code == 404


def test_list_is_paginated_official_first_and_shows_the_config(auth_client, member, official):
    make_agent_template(member.organization, name="AAA first by name")
    page = auth_client.get(f"{AGENTS_URL}?limit=5").json()
    assert page["count"] == AgentTemplate.objects.count() and page["limit"] == 5 and len(page["results"]) == 5
    assert all(row["is_official"] for row in page["results"])
    assert [row["name"] for row in page["results"]] == sorted(row["name"] for row in page["results"])
    last = auth_client.get(f"{AGENTS_URL}?limit=100").json()["results"][-1]
    assert last["name"] == "AAA first by name" and last["is_official"] is False
    row = page["results"][0]
    assert row["config"]["signature"]["outputs"] and row["config_yaml"].startswith("signature:")
    assert row["organization_id"] is None and row["downloads"] == 0 and row["slug"]


def test_category_and_other_filters(auth_client, member, official):
    make_agent_template(member.organization, category="support", name="Ours")
    support = auth_client.get(f"{AGENTS_URL}?category=support&limit=100").json()["results"]
    assert {row["category"] for row in support} == {"support"}
    assert len(support) == AgentTemplate.objects.filter(category="support").count() == 8
    translation = auth_client.get(f"{AGENTS_URL}?category=translation").json()["results"]
    assert [row["name"] for row in translation] == ["Translator"]
    own = auth_client.get(f"{AGENTS_URL}?is_official=false").json()["results"]
    assert [row["name"] for row in own] == ["Ours"]
    classifiers = auth_client.get(f"{AGENTS_URL}?agent_type=classifier&limit=100").json()["results"]
    assert classifiers and {row["agent_type"] for row in classifiers} == {"classifier"}
    bad = auth_client.get(f"{AGENTS_URL}?category=astrology")
    assert bad.status_code == 400 and "category" in bad.json()["error"]["fields"]
    patterns = auth_client.get(f"{ORCHESTRATIONS_URL}?pattern=debate").json()["results"]
    assert [row["pattern"] for row in patterns] == ["debate"]


def test_orchestration_template_detail_names_each_role(viewer, official):
    template = official["support-desk"]
    body = client_for(viewer).get(f"{ORCHESTRATIONS_URL}/{template.pk}").json()
    assert body["pattern"] == "router" and body["agent_template_ids"] == template.agent_template_ids
    assert [(role["position"], role["role"], role["name"]) for role in body["roles"]] == [
        (0, "router", "Support triage"),
        (1, "specialist", "Customer support agent"),
        (2, "specialist", "Billing specialist"),
        (3, "specialist", "Technical support specialist"),
    ]
    assert body["config"]["fallback"] == "first"


def test_use_an_agent_template_over_the_api(auth_client, member, official):
    template = official["invoice-extractor"]
    response = auth_client.post(f"{AGENTS_URL}/{template.pk}/use", {"name": "Invoices"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provider"] == {"kind": "mock", "model": "mock-1", "provider_id": None, "fallback": True}
    agent = Agent.objects.get(pk=body["agent"]["id"])
    assert body["agent"]["name"] == agent.name == "Invoices"
    assert agent.organization_id == member.organization_id and agent.agent_type == "extractor"
    assert auth_client.get(f"{AGENTS_URL}/{template.pk}").json()["downloads"] == 1


def test_use_reports_the_org_default_provider(auth_client, member, official):
    default = make_provider_config(member.organization, provider="openai", is_default=True)
    template = official["translator"]
    body = auth_client.post(f"{AGENTS_URL}/{template.pk}/use", {"name": "T"}, format="json").json()
    assert body["provider"] == {
        "kind": "openai",
        "model": "gpt-4o-mini",
        "provider_id": default.pk,
        "fallback": False,
    }
    assert body["agent"]["config"]["provider"]["provider_id"] == default.pk


def test_use_an_orchestration_template_over_the_api(auth_client, member, official):
    template = official["code-review-panel"]
    response = auth_client.post(f"{ORCHESTRATIONS_URL}/{template.pk}/use", {"name": "Reviews"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    orchestration = Orchestration.objects.get(pk=body["orchestration"]["id"])
    assert orchestration.pattern == "ensemble" and orchestration.organization_id == member.organization_id
    assert [entry["agent"]["id"] for entry in body["agents"]] == orchestration.agent_ids
    assert [entry["role"] for entry in body["agents"]] == ["expert", "expert", "synthesizer"]
    assert [entry["agent_template_id"] for entry in body["agents"]] == template.agent_template_ids
    assert all(entry["provider"]["fallback"] for entry in body["agents"])
    assert auth_client.get(f"{ORCHESTRATIONS_URL}/{template.pk}").json()["downloads"] == 1


def test_use_needs_a_name(auth_client, official):
    response = auth_client.post(f"{AGENTS_URL}/{official['translator'].pk}/use", {}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    assert not Agent.objects.exists()


# --- organizations' own templates ----------------------------------------------------------------


def test_an_organization_saves_an_agent_as_a_template_only_it_sees(member, other_org_owner, official):
    provider = make_provider_config(member.organization, provider="mock", name="Mock account")
    yaml_text = agent_yaml(provider={"provider": "mock", "model": "mock-1", "provider_id": provider.pk})
    agent = make_agent(
        member.organization, config_yaml=yaml_text, agent_type="chat", description="Greets people"
    )
    client = client_for(member)

    response = client.post(
        AGENTS_URL, {"agent_id": agent.pk, "name": "Greeter", "category": "support"}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["category"], body["agent_type"], body["description"]) == (
        "Greeter",
        "support",
        "chat",
        "Greets people",
    )
    assert body["is_official"] is False and body["organization_id"] == member.organization_id
    assert body["config"]["provider"]["provider_id"] is None and "provider_id" not in body["config_yaml"]
    assert body["config"]["signature"] == agent.config["signature"]
    assert body["id"] in ids(client.get(f"{AGENTS_URL}?is_official=false"))
    other = client_for(other_org_owner)
    assert body["id"] not in ids(other.get(f"{AGENTS_URL}?limit=100"))
    assert other.get(f"{AGENTS_URL}/{body['id']}").status_code == 404
    audit = AuditLog.objects.get(record_id=body["id"], operation_type="create")
    assert audit.changes["source_agent_id"] == agent.pk and audit.user_id == member.pk

    # And the organization can use it like any template.
    use = client.post(f"{AGENTS_URL}/{body['id']}/use", {"name": "Greeter 2"}, format="json")
    assert use.status_code == 201 and use.json()["provider"]["kind"] == "mock"


def test_saving_another_organizations_agent_is_refused(auth_client, other_org_owner):
    foreign = make_agent(other_org_owner.organization)
    response = auth_client.post(
        AGENTS_URL, {"agent_id": foreign.pk, "name": "Stolen", "category": "other"}, format="json"
    )
    assert response.status_code == 400 and "agent_id" in response.json()["error"]["fields"]
    assert not AgentTemplate.objects.exists()


def test_saving_validates_the_body(auth_client, member):
    agent = make_agent(member.organization)
    response = auth_client.post(
        AGENTS_URL, {"agent_id": agent.pk, "name": "X", "category": "astrology"}, format="json"
    )
    assert response.status_code == 400 and "category" in response.json()["error"]["fields"]
