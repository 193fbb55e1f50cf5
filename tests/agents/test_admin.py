"""The agents admin: list with filters and search, versions inline, and changes that go through
the same validation, versioning and audit as the API."""

from __future__ import annotations

import pytest

from agents.models import Agent, AgentVersion
from observability.models import AuditLog
from tests.agents.agent_configs import agent_config, agent_yaml
from tests.agents.factories import make_agent

pytestmark = pytest.mark.django_db


def form_data(agent: Agent, **changes) -> dict:
    data = {
        "name": agent.name,
        "description": agent.description,
        "agent_type": agent.agent_type,
        "status": agent.status,
        "config_yaml": agent.config_yaml,
        "change_summary": "",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": str(agent.versions.count()),
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }
    if agent.is_public:
        data["is_public"] = "on"
    data.update(changes)
    return data


def change_url(agent: Agent) -> str:
    return f"/admin/agents/agent/{agent.pk}/change/"


def test_changelist_filters_and_searches(operator_browser, member, other_org_owner):
    mine = make_agent(member.organization, name="Ticket triage", status="active", agent_type="classifier")
    theirs = make_agent(other_org_owner.organization, name="Greeter")
    page = operator_browser.get("/admin/agents/agent/")
    assert page.status_code == 200
    assert mine.name in page.content.decode() and theirs.name in page.content.decode()
    filtered = operator_browser.get(
        f"/admin/agents/agent/?organization__id__exact={member.organization_id}&status=active"
    )
    assert mine.name in filtered.content.decode() and theirs.name not in filtered.content.decode()
    by_type = operator_browser.get("/admin/agents/agent/?agent_type=chat")
    assert mine.name not in by_type.content.decode()
    searched = operator_browser.get("/admin/agents/agent/?q=triage")
    assert mine.name in searched.content.decode() and theirs.name not in searched.content.decode()


def test_change_page_shows_versions_inline_read_only(operator_browser, member):
    agent = make_agent(member.organization)
    AgentVersion.objects.create(
        agent=agent, version="0.9.0", config_yaml="x", change_summary="the first draft", created_by=member
    )
    page = operator_browser.get(change_url(agent))
    assert page.status_code == 200
    html = page.content.decode()
    assert "0.9.0" in html and "the first draft" in html
    assert 'name="versions-0-version"' not in html  # shown, not editable


def test_invalid_yaml_shows_each_error_with_its_path_and_changes_nothing(operator_browser, member):
    agent = make_agent(member.organization)
    document = agent_yaml(config={"temperature": 9, "strategy": "psychic"})
    response = operator_browser.post(
        change_url(agent), form_data(agent, config_yaml=document, name="Renamed")
    )
    assert response.status_code == 200  # the form again, with errors
    html = response.content.decode()
    assert "config.temperature: must be at least 0 and at most 2, got 9" in html
    assert "config.strategy: unknown value" in html
    agent.refresh_from_db()
    assert agent.name != "Renamed" and agent.config["config"]["strategy"] == "single_shot"


def test_hostile_yaml_is_a_form_error_not_a_crash(operator_browser, member):
    agent = make_agent(member.organization)
    response = operator_browser.post(
        change_url(agent), form_data(agent, config_yaml="a: !!python/object:os.system x")
    )
    assert response.status_code == 200
    assert "tags are not allowed" in response.content.decode()


def test_a_saved_change_is_versioned_and_audited_like_the_api(operator_browser, operator, member):
    agent = make_agent(member.organization)
    config = agent_config()
    config["signature"]["outputs"].append(
        {"name": "priority", "type": "enum", "enum_values": ["low", "high"]}
    )
    document = agent_yaml(config).replace("\n", "\r\n")  # as a operator_browser posts a textarea
    response = operator_browser.post(
        change_url(agent), form_data(agent, config_yaml=document, status="active", change_summary="ops fix")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    agent.refresh_from_db()
    assert (agent.version, agent.status) == ("1.1.0", "active")
    assert agent.config_yaml == agent_yaml(config)
    kept = AgentVersion.objects.get(agent=agent)
    assert (kept.version, kept.change_summary, kept.created_by_id) == ("1.0.0", "ops fix", operator.pk)
    row = AuditLog.objects.get(operation_type="update", record_id=agent.pk)
    assert (
        row.user_id == operator.pk and row.changes["status"] == "active" and row.changes["version"] == "1.1.0"
    )


def test_saving_without_changes_writes_nothing(operator_browser, member):
    agent = make_agent(member.organization)
    assert operator_browser.post(change_url(agent), form_data(agent)).status_code == 302
    assert not AgentVersion.objects.exists()
    assert not AuditLog.objects.filter(model_name="Agent").exists()


def test_agents_are_not_added_or_deleted_from_the_admin(operator_browser, member):
    agent = make_agent(member.organization)
    assert operator_browser.get("/admin/agents/agent/add/").status_code == 403
    assert operator_browser.get(f"/admin/agents/agent/{agent.pk}/delete/").status_code == 403
