"""Using templates: what `use` creates is a runnable agent or orchestration of the caller's
organization, on the organization's provider or on mock, in one transaction."""

from __future__ import annotations

import pytest

from agents.config_schema import parse_agent_config
from agents.models import Agent
from agents.runs import agent_test_run
from agents.yaml_loader import load_yaml
from observability.models import AuditLog, Run
from orchestrations.models import Orchestration
from orchestrations.runs import orchestration_execute
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.services import agent_template_use, orchestration_template_use
from templates.yaml_rewrite import config_yaml_with
from tests.agents.agent_configs import agent_yaml
from tests.conftest import client_for
from tests.fakes.behaviours import json_answer
from tests.providers.factories import make_provider_config
from tests.templates.factories import (
    assert_matches_outputs,
    load_official,
    make_agent_template,
    sample_inputs,
)
from tests.templates.test_official import AGENTS, ORCHESTRATION_FILES, read

pytestmark = pytest.mark.django_db(transaction=True)

ORCHESTRATIONS = {read(path)["slug"]: read(path) for path in ORCHESTRATION_FILES}


@pytest.fixture
def official(db):
    return load_official()


# --- agents --------------------------------------------------------------------------------------


# Templates whose agents call MCP tools or wait for approvals run in test_official_on_mock and
# test_official_approvals, with a real MCP server and decisions.
PLAIN_AGENTS = sorted(slug for slug, data in AGENTS.items() if "tools" not in load_yaml(data["config_yaml"]))
PLAIN_ORCHESTRATIONS = sorted(
    slug for slug, data in ORCHESTRATIONS.items() if "approval" not in load_yaml(data["config_yaml"])
)


@pytest.mark.parametrize("slug", PLAIN_AGENTS)
def test_every_official_agent_template_makes_a_runnable_mock_agent(member, official, slug):
    template = official[slug]
    made = agent_template_use(user=member, template=template, name=f"My {template.name}")

    agent = Agent.objects.get(pk=made.agent.pk)
    assert agent.organization_id == member.organization_id and agent.created_by_id == member.pk
    assert (agent.agent_type, agent.description) == (template.agent_type, template.description)
    assert agent.config["provider"] == {"provider": "mock", "model": "mock-1", "provider_id": None}
    assert agent.config["signature"] == template.config["signature"]
    assert agent.config["config"] == template.config["config"]
    assert made.provider.as_dict() == {
        "kind": "mock",
        "model": "mock-1",
        "provider_id": None,
        "fallback": True,
    }

    result = agent_test_run(user=member, agent=agent, inputs=sample_inputs(agent.config))

    assert Run.objects.get(pk=result["run_id"]).status == "completed"
    assert_matches_outputs(result["output"], agent.config)
    for field in agent.config["signature"]["outputs"]:  # the mock derives answers from the schema
        if field["type"] == "enum":
            assert result["output"][field["name"]] == field["enum_values"][0]
        elif field["type"] == "string":
            assert result["output"][field["name"]].startswith(f"{field['name']}: ")


def test_the_rewritten_yaml_keeps_the_template_text_but_the_provider(member, official):
    template = official["faq-assistant"]
    agent = agent_template_use(user=member, template=template, name="FAQ").agent
    assert "provider:\n  provider: mock\n  model: mock-1\n" in agent.config_yaml
    assert "gpt-4o-mini" not in agent.config_yaml
    before, _, after = template.config_yaml.partition("provider:\n  provider: openai\n  model: gpt-4o-mini\n")
    assert agent.config_yaml == before + "provider:\n  provider: mock\n  model: mock-1\n" + after


def test_the_agent_uses_the_organizations_default_provider_of_the_template_kind(member, official):
    org = member.organization
    make_provider_config(org, provider="openai", name="Older openai account")
    default = make_provider_config(org, provider="openai", is_default=True)
    make_provider_config(org, provider="anthropic", is_default=True)
    make_provider_config(org, provider="openai", user=member, name="Personal account")

    made = agent_template_use(user=member, template=official["code-reviewer"], name="Reviewer")

    assert made.provider.as_dict() == {
        "kind": "openai",
        "model": "gpt-4o",
        "provider_id": default.pk,
        "fallback": False,
    }
    assert made.agent.config["provider"] == {
        "provider": "openai",
        "model": "gpt-4o",
        "provider_id": default.pk,
    }
    assert load_yaml(made.agent.config_yaml)["provider"] == {
        "provider": "openai",
        "model": "gpt-4o",
        "provider_id": default.pk,
    }


def test_another_organizations_provider_is_never_picked(member, other_org_owner, official):
    make_provider_config(other_org_owner.organization, provider="openai", is_default=True)
    made = agent_template_use(user=member, template=official["translator"], name="Translator")
    assert made.provider.kind == "mock" and made.provider.fallback is True


def test_an_agent_on_the_org_provider_runs_through_the_real_sdk(member, official, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(
        member.organization, provider="openai", api_base_url=fake_openai.base_url, is_default=True
    )
    agent = agent_template_use(user=member, template=official["sentiment-analyzer"], name="Sentiment").agent
    answer = {"sentiment": "negative", "score": -0.8, "emotions": ["frustration"], "key_phrases": ["broken"]}
    fake_openai.enqueue(json_answer(answer))

    result = agent_test_run(user=member, agent=agent, inputs={"text": "It arrived broken."})

    assert result["output"] == answer
    sent = fake_openai.requests[-1].json
    assert sent["model"] == "gpt-4o-mini"
    assert "You analyse the sentiment of a text" in sent["messages"][0]["content"]


def test_a_mock_template_keeps_its_scripted_answers(member):
    scripted = agent_yaml(
        provider={"provider": "mock", "model": "mock-1", "responses": [{"response": {"response": "Hi"}}]}
    )
    template = make_agent_template(member.organization, config_yaml=scripted)
    made = agent_template_use(user=member, template=template, name="Scripted")
    assert made.provider.as_dict() == {
        "kind": "mock",
        "model": "mock-1",
        "provider_id": None,
        "fallback": False,
    }
    assert made.agent.config_yaml == scripted
    assert agent_test_run(user=member, agent=made.agent, inputs={"inquiry": "Hello?"})["output"] == {
        "response": "Hi"
    }


def test_use_counts_downloads_and_audits(member, official):
    template = official["translator"]
    for name in ("One", "Two"):
        agent_template_use(user=member, template=template, name=name)
    template.refresh_from_db()
    assert template.downloads == 2
    uses = AuditLog.objects.filter(record_id=template.pk, operation_type="use").order_by("created_at", "id")
    assert [row.changes["name"] for row in uses] == ["One", "Two"]
    assert all(row.organization_id == member.organization_id and row.user_id == member.pk for row in uses)
    created = set(Agent.objects.filter(organization=member.organization).values_list("pk", flat=True))
    assert {row.changes["agent_id"] for row in uses} == created
    assert (
        AuditLog.objects.filter(model_name="Agent", operation_type="create", record_id__in=created).count()
        == 2
    )


def test_a_use_that_fails_leaves_nothing_behind(member, official):
    template = official["translator"]
    AgentTemplate.objects.filter(pk=template.pk).update(
        config_yaml="signature: {}\nprovider: {provider: openai}\n"
    )
    template.refresh_from_db()
    response = client_for(member).post(
        f"/api/templates/agents/{template.pk}/use", {"name": "Broken"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_config"
    template.refresh_from_db()
    assert template.downloads == 0
    assert not Agent.objects.exists()
    assert not AuditLog.objects.filter(operation_type="use").exists()


def test_config_yaml_with_provider_rewrites_flow_style_sections_too():
    text = (
        "signature: {system_prompt: hi, inputs: [], outputs: [{name: a, type: string}]}\n"
        "provider: {provider: openai, model: x}\n"
    )
    rewritten = config_yaml_with(text, "provider", {"provider": "mock", "model": "mock-1"})
    assert rewritten.startswith("signature: {system_prompt: hi")
    assert load_yaml(rewritten)["provider"] == {"provider": "mock", "model": "mock-1"}


# --- orchestrations ------------------------------------------------------------------------------


def _check_output(slug: str, output: dict, made) -> None:
    names = [entry.agent.name for entry in made.agents]
    if slug == "content-pipeline":
        assert [step["agent"] for step in output["steps"]] == names
        assert output["output"]["edited_article"].startswith("edited_article: ")
    elif slug == "document-insights":
        assert set(output["outputs"]) == set(names)
    elif slug == "research-team":
        # The mock's plan follows the plan schema: one subtask, for the first worker it lists.
        (subtask,) = output["subtasks"]
        assert subtask["worker"] == names[1] and subtask["task"].startswith("task: ")
        assert output["output"]["answer"].startswith("answer: ")
    elif slug == "support-desk":
        assert output["specialist"] == names[1]  # the derived route_to is the first specialist
    elif slug == "code-review-panel":
        assert set(output["answers"]) == set(names[:-1]) and output["output"]["verdict"] == "approve"
    elif slug == "moderation-panel":
        assert output["reached"] is True and output["decision"] == "allow" and output["tally"] == {"allow": 3}
    elif slug == "decision-debate":
        assert len(output["transcript"]) == 4 and output["winner"] == names[0]
    elif slug == "tiered-support":
        # The mock says `escalate: true` at every tier: the last tier's answer stands, unhandled.
        assert output["tier"] == 3 and output["handled"] is False and len(output["escalations"]) == 2
    elif slug == "incident-war-room":
        assert (
            output["done"] is True
            and output["iterations"] == 1
            and set(output["blackboard"]) == set(names[1:])
        )
    else:  # pragma: no cover - a new official template needs its expectations here
        pytest.fail(f"no expectations for {slug}")


@pytest.mark.parametrize("slug", PLAIN_ORCHESTRATIONS)
def test_every_official_orchestration_template_makes_a_runnable_orchestration(member, official, slug):
    template = official[slug]
    made = orchestration_template_use(user=member, template=template, name="Team")

    orchestration = Orchestration.objects.get(pk=made.orchestration.pk)
    assert (
        orchestration.organization_id == member.organization_id and orchestration.pattern == template.pattern
    )
    assert orchestration.agent_ids == [entry.agent.pk for entry in made.agents]
    assert [entry.template_id for entry in made.agents] == template.agent_template_ids
    assert orchestration.config == template.config
    agents = Agent.objects.filter(pk__in=orchestration.agent_ids)
    assert agents.count() == len(template.agent_template_ids)  # one new agent per position
    assert all(entry.provider.fallback and entry.provider.kind == "mock" for entry in made.agents)
    first = parse_agent_config(AGENTS[ORCHESTRATIONS[slug]["agents"][0]]["config_yaml"])
    result = orchestration_execute(user=member, orchestration=orchestration, inputs=sample_inputs(first))

    assert Run.objects.get(pk=result["run_id"]).status == "completed"
    positions = EXECUTED.get(slug, range(len(orchestration.agent_ids)))
    assert set(result["agents_executed"]) == {orchestration.agent_ids[p] for p in positions}
    _check_output(slug, result["output"], made)


# Positions that run, where not all do: the router and its pick; the supervisor and the worker
# it assigned.
EXECUTED = {"support-desk": [0, 1], "research-team": [0, 1]}


def test_orchestration_use_names_roles_counts_downloads_and_audits(member, official):
    template = official["moderation-panel"]
    made = orchestration_template_use(user=member, template=template, name="Panel")
    assert [entry.role for entry in made.agents] == ["voter", "voter", "voter"]
    assert [entry.agent.name for entry in made.agents] == [
        "Panel: Content moderator",
        "Panel: Content moderator (2)",
        "Panel: Content moderator (3)",
    ]
    template.refresh_from_db()
    assert template.downloads == 1
    audit = AuditLog.objects.get(record_id=template.pk, operation_type="use")
    assert audit.changes["orchestration_id"] == made.orchestration.pk
    assert audit.changes["agent_ids"] == made.orchestration.agent_ids
    roles = [
        entry.role
        for entry in orchestration_template_use(
            user=member, template=official["support-desk"], name="D"
        ).agents
    ]
    assert roles == ["router", "specialist", "specialist", "specialist"]


def test_orchestration_agents_use_the_org_provider_when_there_is_one(member, official):
    default = make_provider_config(member.organization, provider="openai", is_default=True)
    made = orchestration_template_use(user=member, template=official["decision-debate"], name="Debate")
    assert [entry.provider.as_dict() for entry in made.agents] == [
        {"kind": "openai", "model": "gpt-4o-mini", "provider_id": default.pk, "fallback": False},
        {"kind": "openai", "model": "gpt-4o-mini", "provider_id": default.pk, "fallback": False},
        {"kind": "openai", "model": "gpt-4o", "provider_id": default.pk, "fallback": False},
    ]


def test_an_orchestration_use_that_fails_creates_no_agents(member, official):
    template = official["decision-debate"]
    # Corrupt the stored config past validation: the orchestration cannot be created, so neither
    # may the agents made before it.
    OrchestrationTemplate.objects.filter(pk=template.pk).update(config_yaml="rounds: 99\n")
    response = client_for(member).post(
        f"/api/templates/orchestrations/{template.pk}/use", {"name": "Debate"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_config"
    assert not Agent.objects.exists() and not Orchestration.objects.exists()
    template.refresh_from_db()
    assert template.downloads == 0


def test_an_orchestration_template_whose_agent_template_is_gone_is_a_409(member, official):
    template = official["decision-debate"]
    AgentTemplate.objects.filter(slug="debate-judge").delete()
    response = client_for(member).post(
        f"/api/templates/orchestrations/{template.pk}/use", {"name": "Debate"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "template_incomplete"
    assert not Agent.objects.exists()


def test_config_yaml_with_provider_writes_the_document_again_when_it_cannot_cut_cleanly():
    text = '{signature: {system_prompt: "Line one.\\nLine two.\\n", inputs: [], outputs: [{name: a, type: string}]}, provider: {provider: openai, model: x}}\n'  # noqa: E501
    rewritten = config_yaml_with(text, "provider", {"provider": "mock", "model": "mock-1"})
    assert load_yaml(rewritten) == {**load_yaml(text), "provider": {"provider": "mock", "model": "mock-1"}}
    assert "system_prompt: |\n    Line one.\n    Line two.\n" in rewritten
