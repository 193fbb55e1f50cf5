"""The templates admin: operators edit templates and the official flag; configs are validated on
save and every save is audited."""

from __future__ import annotations

import pytest

from observability.models import AuditLog
from templates.models import AgentTemplate, OrchestrationTemplate
from tests.templates.factories import load_official, make_agent_template

pytestmark = pytest.mark.django_db


def agent_form(template: AgentTemplate, **changes) -> dict:
    data = {
        "slug": template.slug,
        "organization": template.organization_id or "",
        "name": template.name,
        "description": template.description,
        "category": template.category,
        "agent_type": template.agent_type,
        "icon": template.icon,
        "config_yaml": template.config_yaml,
    }
    if template.is_official:
        data["is_official"] = "on"
    data.update(changes)
    return data


def test_the_changelists_list_and_filter(operator_browser, member):
    load_official()
    mine = make_agent_template(member.organization, name="Our own triage")
    page = operator_browser.get("/admin/templates/agenttemplate/?is_official__exact=0")
    assert page.status_code == 200 and mine.name in page.content.decode()
    assert "Translator" not in page.content.decode()
    assert "Support desk" in operator_browser.get("/admin/templates/orchestrationtemplate/").content.decode()


def test_a_valid_config_change_is_saved_with_its_normalized_config_and_audited(operator_browser, operator):
    template = load_official()["translator"]
    changed = template.config_yaml.replace("temperature: 0.2", "temperature: 0.5")

    response = operator_browser.post(
        f"/admin/templates/agenttemplate/{template.pk}/change/", agent_form(template, config_yaml=changed)
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    template.refresh_from_db()
    assert template.config_yaml == changed and template.config["config"]["temperature"] == 0.5
    audit = AuditLog.objects.get(record_id=template.pk, operation_type="update", user=operator)
    assert audit.changes == {"config_yaml": "changed"}


def test_an_invalid_config_is_refused_with_its_path(operator_browser):
    template = load_official()["translator"]
    before = template.config_yaml
    broken = before.replace("temperature: 0.2", "temperature: 7")

    response = operator_browser.post(
        f"/admin/templates/agenttemplate/{template.pk}/change/", agent_form(template, config_yaml=broken)
    )

    assert response.status_code == 200
    assert "config.temperature: must be at least 0 and at most 2, got 7" in response.content.decode()
    template.refresh_from_db()
    assert template.config_yaml == before


def test_the_official_flag_goes_with_no_organization(operator_browser, member):
    template = make_agent_template(member.organization, name="Promote me")
    url = f"/admin/templates/agenttemplate/{template.pk}/change/"

    refused = operator_browser.post(url, agent_form(template, is_official="on", slug="promoted"))
    assert (
        refused.status_code == 200
        and "An official template belongs to no organization" in refused.content.decode()
    )

    promoted = operator_browser.post(
        url, agent_form(template, is_official="on", slug="promoted", organization="")
    )
    assert promoted.status_code == 302
    template.refresh_from_db()
    assert template.is_official and template.organization_id is None and template.slug == "promoted"


def test_an_operator_adds_an_orchestration_template_from_agent_templates(operator_browser, operator, member):
    official = load_official()
    ids = [official["debate-proponent"].pk, official["debate-critic"].pk, official["debate-judge"].pk]
    data = {
        "is_official": "on",
        "slug": "quick-debate",
        "organization": "",
        "name": "Quick debate",
        "description": "One round.",
        "pattern": "debate",
        "icon": "",
        "agent_template_ids": str(ids).replace("'", '"'),
        "config_yaml": "rounds: 1\n",
    }
    too_few = operator_browser.post(
        "/admin/templates/orchestrationtemplate/add/", {**data, "agent_template_ids": f'["{ids[0]}"]'}
    )
    assert too_few.status_code == 200 and "debate takes 3 to 5 agents, got 1" in too_few.content.decode()
    private = make_agent_template(member.organization)
    foreign = operator_browser.post(
        "/admin/templates/orchestrationtemplate/add/",
        {**data, "agent_template_ids": f'["{ids[0]}", "{ids[1]}", "{private.pk}"]'},
    )
    assert (
        foreign.status_code == 200
        and f"Not an agent template official: [2] {private.pk}" in foreign.content.decode()
    )

    response = operator_browser.post("/admin/templates/orchestrationtemplate/add/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    template = OrchestrationTemplate.objects.get(slug="quick-debate")
    assert (
        template.agent_template_ids == ids
        and template.config["rounds"] == 1
        and template.created_by == operator
    )
    assert AuditLog.objects.filter(record_id=template.pk, operation_type="create", user=operator).exists()
