"""Agent versions: a changed config is kept as a version with a summary and bumps the version
(minor for a signature change, patch otherwise); restore; the versions list."""

from __future__ import annotations

import pytest

from agents import services
from agents.models import Agent, AgentVersion
from observability.models import AuditLog
from tests.agents.agent_configs import agent_config, agent_yaml
from tests.agents.factories import make_agent
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db


def with_priority() -> dict:
    config = agent_config()
    config["signature"]["outputs"].append(
        {"name": "priority", "type": "enum", "enum_values": ["low", "high"]}
    )
    return config


@pytest.fixture
def agent(member):
    return make_agent(member.organization, created_by=member)


def patch(client, agent, **body):
    response = client.patch(f"/api/agents/{agent.pk}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_signature_change_is_a_minor_bump_that_keeps_the_old_config(auth_client, member, agent):
    old_yaml, old_config = agent.config_yaml, agent.config
    body = patch(auth_client, agent, config_yaml=agent_yaml(with_priority()))
    assert body["version"] == "1.1.0"
    assert [field["name"] for field in body["config"]["signature"]["outputs"]] == ["response", "priority"]
    kept = AgentVersion.objects.get(agent=agent)
    assert (kept.version, kept.config_yaml, kept.config) == ("1.0.0", old_yaml, old_config)
    assert kept.change_summary == "1.0.0 -> 1.1.0: signature changed: outputs added priority"
    assert kept.created_by_id == member.pk
    row = AuditLog.objects.get(operation_type="update", record_id=agent.pk)
    assert row.changes == {
        "version": "1.1.0",
        "previous_version": "1.0.0",
        "change_summary": kept.change_summary,
    }


def test_other_config_changes_are_a_patch_bump_with_a_generated_summary(auth_client, agent):
    body = patch(auth_client, agent, config_yaml=agent_yaml(config={"temperature": 0.2, "max_tokens": 99}))
    assert body["version"] == "1.0.1"
    summary = AgentVersion.objects.get(agent=agent).change_summary
    assert summary == "1.0.0 -> 1.0.1: config changed: temperature 0.7 -> 0.2, max_tokens 1024 -> 99"


@pytest.mark.parametrize(
    ("change", "part"),
    [
        (lambda c: c["signature"].update(system_prompt="Be terse."), "patch"),
        (lambda c: c["signature"]["inputs"][0].update(description="Other words"), "patch"),
        (lambda c: c["provider"].update(model="mock-2"), "patch"),
        (lambda c: c["signature"]["inputs"][0].update(type="object"), "minor"),
        (lambda c: c["signature"]["inputs"][0].update(required=False), "minor"),
        (lambda c: c["signature"]["outputs"][0].update(name="answer"), "minor"),
        (lambda c: c["signature"]["inputs"].clear(), "minor"),
    ],
)
def test_the_bump_rule(auth_client, agent, change, part):
    config = agent_config()
    change(config)
    body = patch(auth_client, agent, config_yaml=agent_yaml(config))
    assert body["version"] == {"patch": "1.0.1", "minor": "1.1.0"}[part]


def test_versions_count_up_and_a_minor_bump_resets_the_patch(member, agent):
    seen = []
    for config in (
        agent_config(config={"temperature": 0.1}),
        agent_config(config={"temperature": 0.2}),
        with_priority(),
        agent_config(),
    ):
        agent = services.agent_update(user=member, agent=agent, config_yaml=agent_yaml(config))
        seen.append(agent.version)
    assert seen == ["1.0.1", "1.0.2", "1.1.0", "1.2.0"]
    assert list(AgentVersion.objects.filter(agent=agent).values_list("version", flat=True)) == [
        "1.1.0",
        "1.0.2",
        "1.0.1",
        "1.0.0",
    ]


def test_a_given_change_summary_is_kept(auth_client, agent):
    patch(
        auth_client, agent, config_yaml=agent_yaml(with_priority()), change_summary="Triage needs a priority"
    )
    assert AgentVersion.objects.get(agent=agent).change_summary == "Triage needs a priority"


def test_new_yaml_text_with_the_same_config_is_kept_without_a_version(auth_client, agent):
    reformatted = "# the same agent, commented\n" + agent.config_yaml
    body = patch(auth_client, agent, config_yaml=reformatted)
    assert body["version"] == "1.0.0" and body["config_yaml"] == reformatted
    assert not AgentVersion.objects.exists()
    row = AuditLog.objects.get(operation_type="update", record_id=agent.pk)
    assert row.changes == {"config_yaml": "reformatted, same config"}
    # Sending the current text again is no change at all.
    patch(auth_client, agent, config_yaml=reformatted)
    assert AuditLog.objects.filter(record_id=agent.pk).count() == 1


def test_versions_list_is_newest_first_and_paginated(auth_client, agent):
    for temperature in (0.1, 0.2, 0.3):
        patch(auth_client, agent, config_yaml=agent_yaml(config={"temperature": temperature}))
    page = auth_client.get(f"/api/agents/{agent.pk}/versions?limit=2").json()
    assert (page["count"], page["limit"]) == (3, 2)
    assert [row["version"] for row in page["results"]] == ["1.0.2", "1.0.1"]
    assert page["results"][1]["config"]["config"]["temperature"] == 0.1
    assert set(page["results"][0]) == {
        "id",
        "version",
        "change_summary",
        "config_yaml",
        "config",
        "created_by",
        "created_at",
    }
    assert (
        auth_client.get(f"/api/agents/{agent.pk}/versions?page=2&limit=2").json()["results"][0]["version"]
        == "1.0.0"
    )


def test_restore_makes_an_old_config_current_as_a_new_version(auth_client, member, agent):
    original = agent.config
    patch(auth_client, agent, config_yaml=agent_yaml(with_priority()))  # 1.1.0
    patch(
        auth_client, agent, config_yaml=agent_yaml(with_priority() | {"config": {"temperature": 0}})
    )  # 1.1.1
    response = auth_client.post(f"/api/agents/{agent.pk}/versions/1.0.0/restore")
    assert response.status_code == 200, response.content
    body = response.json()
    # Dropping `priority` again changes the signature: a minor bump.
    assert body["version"] == "1.2.0"
    assert body["config"] == original
    agent.refresh_from_db()
    assert agent.config == original
    kept = AgentVersion.objects.get(agent=agent, version="1.1.1")
    assert kept.config["config"]["temperature"] == 0
    assert kept.change_summary.startswith(
        "1.1.1 -> 1.2.0: restored 1.0.0; signature changed: outputs removed priority"
    )
    row = AuditLog.objects.get(operation_type="restore", record_id=agent.pk)
    assert row.user_id == member.pk
    assert row.changes["restored_version"] == "1.0.0" and row.changes["version"] == "1.2.0"
    versions = [
        row["version"] for row in auth_client.get(f"/api/agents/{agent.pk}/versions").json()["results"]
    ]
    assert versions == ["1.1.1", "1.1.0", "1.0.0"]


def test_restoring_the_current_config_changes_nothing(auth_client, agent):
    patch(auth_client, agent, config_yaml=agent_yaml(config={"temperature": 0.1}))
    patch(auth_client, agent, config_yaml=agent.config_yaml)  # back to the 1.0.0 text, as 1.0.2
    response = auth_client.post(f"/api/agents/{agent.pk}/versions/1.0.0/restore")
    assert response.status_code == 200 and response.json()["version"] == "1.0.2"
    assert AgentVersion.objects.filter(agent=agent).count() == 2
    assert not AuditLog.objects.filter(operation_type="restore").exists()


def test_restoring_an_unknown_version_is_404(auth_client, agent):
    response = auth_client.post(f"/api/agents/{agent.pk}/versions/9.9.9/restore")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert auth_client.post(f"/api/agents/{agent.pk}/versions/latest/restore").status_code == 404


def test_a_restored_config_is_validated_again(auth_client, member):
    provider = make_provider_config(member.organization, provider="openai")
    config = agent_config(provider={"provider": "openai", "model": "gpt-4o-mini", "provider_id": provider.pk})
    agent = make_agent(member.organization, config_yaml=agent_yaml(config))
    patch(auth_client, agent, config_yaml=agent_yaml())  # now on the mock provider
    provider.is_active = False
    provider.save()
    response = auth_client.post(f"/api/agents/{agent.pk}/versions/1.0.0/restore")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["config_yaml"][0]["path"] == "provider.provider_id"
    assert Agent.objects.get(pk=agent.pk).version == "1.0.1"
    assert AgentVersion.objects.filter(agent=agent).count() == 1
