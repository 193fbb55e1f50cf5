"""The official templates as shipped: every config validates, every pattern has one, tools and
approvals have theirs, and loading them is idempotent."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.config_schema import parse_agent_config
from agents.yaml_loader import load_yaml
from observability.models import AuditLog
from orchestrations.patterns import PATTERNS, validate_pattern_config
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.official import OFFICIAL_DIR, TemplateDataError, official_templates_load
from templates.services import agent_template_config_parse
from templates.slots import tool_slot

AGENT_FILES = sorted((OFFICIAL_DIR / "agents").glob("*.yaml"))
ORCHESTRATION_FILES = sorted((OFFICIAL_DIR / "orchestrations").glob("*.yaml"))


def read(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


AGENTS = {read(path)["slug"]: read(path) for path in AGENT_FILES}
ORCHESTRATIONS = {read(path)["slug"]: read(path) for path in ORCHESTRATION_FILES}


@pytest.mark.parametrize("path", AGENT_FILES, ids=lambda path: path.stem)
def test_every_official_agent_template_is_a_valid_openai_config(path):
    data = read(path)
    config = agent_template_config_parse(
        data["config_yaml"], official=True, mock_responses=data.get("mock_responses", [])
    )
    assert config["provider"]["provider"] == "openai" and config["provider"]["provider_id"] is None
    assert all(tool_slot(tool) for tool in config["tools"]), "tools are MCP tools of a slot"
    assert bool(config["tools"]) == bool(data.get("mock_responses")), "the mock shows the tools at work"
    assert config["signature"]["system_prompt"].count("\n") >= 3, "a real prompt, not a placeholder"
    assert config["signature"]["inputs"] and config["signature"]["outputs"]
    assert all(field["description"] for part in ("inputs", "outputs") for field in config["signature"][part])
    assert data["slug"] == path.stem and data["description"].strip()


def test_official_agent_templates_cover_the_categories():
    categories = {data["category"] for data in AGENTS.values()}
    assert len(AGENTS) >= 12
    assert {
        "support",
        "analysis",
        "content",
        "engineering",
        "data_extraction",
        "translation",
        "classification",
        "summarization",
        "research",
        "sales",
    } <= categories
    assert sum(1 for data in AGENTS.values() if "type: enum" in data["config_yaml"]) >= 12


def test_there_is_an_official_orchestration_template_for_every_pattern():
    assert {read(path)["pattern"] for path in ORCHESTRATION_FILES} == set(PATTERNS)


def test_official_templates_show_an_approved_mcp_tool_and_an_approved_step():
    gated_tools = [
        (slug, tool["tool"])
        for slug, data in AGENTS.items()
        for tool in load_yaml(data["config_yaml"]).get("tools", [])
        if tool_slot(tool) and tool.get("requires_approval")
    ]
    assert ("order-status-assistant", "lookup_order") in gated_tools
    steps = {slug: load_yaml(data["config_yaml"]).get("approval") for slug, data in ORCHESTRATIONS.items()}
    assert steps["approved-content-pipeline"]["after"] == 1


@pytest.mark.parametrize("path", ORCHESTRATION_FILES, ids=lambda path: path.stem)
def test_every_official_orchestration_template_validates_with_its_agents(path):
    data = read(path)
    config = validate_pattern_config(
        data["pattern"], load_yaml(data["config_yaml"]), agent_count=len(data["agents"])
    )
    assert isinstance(config, dict)
    assert all(slug in AGENTS for slug in data["agents"])


def test_orchestration_templates_give_each_role_a_fitting_agent():
    by_pattern = {read(path)["pattern"]: read(path)["agents"] for path in ORCHESTRATION_FILES}
    assert by_pattern["router"][0] == "support-triage-router"
    assert by_pattern["supervisor_worker"][0] == "research-lead"
    assert by_pattern["debate"][-1] == "debate-judge" and by_pattern["ensemble"][-1] == "review-synthesizer"
    assert by_pattern["blackboard"][0] == "incident-commander"
    assert len(by_pattern["consensus"]) >= 3
    # The consensus decision field is an output the voters declare, so votes are comparable enums.
    consensus = next(read(p) for p in ORCHESTRATION_FILES if read(p)["pattern"] == "consensus")
    field = load_yaml(consensus["config_yaml"])["decision_field"]
    voter = parse_agent_config(AGENTS[consensus["agents"][0]]["config_yaml"])
    assert any(o["name"] == field and o["type"] == "enum" for o in voter["signature"]["outputs"])


@pytest.mark.django_db
def test_loading_twice_leaves_the_same_rows():
    first = official_templates_load()
    assert first.agents.created == len(AGENT_FILES) and first.orchestrations.created == len(
        ORCHESTRATION_FILES
    )
    rows = {
        model: list(model.objects.order_by("pk").values()) for model in (AgentTemplate, OrchestrationTemplate)
    }
    audits = AuditLog.objects.count()

    second = official_templates_load()

    assert (second.agents.created, second.agents.updated, second.agents.unchanged) == (0, 0, len(AGENT_FILES))
    assert second.orchestrations.unchanged == len(ORCHESTRATION_FILES)
    for model, before in rows.items():
        assert list(model.objects.order_by("pk").values()) == before
    assert AuditLog.objects.count() == audits


@pytest.mark.django_db
def test_loaded_orchestration_templates_reference_official_agent_templates_by_position():
    official_templates_load()
    ids = dict(AgentTemplate.objects.values_list("slug", "pk"))
    for path in ORCHESTRATION_FILES:
        data = read(path)
        template = OrchestrationTemplate.objects.get(slug=data["slug"])
        assert template.is_official and template.organization_id is None
        assert template.agent_template_ids == [ids[slug] for slug in data["agents"]]
        assert template.config == validate_pattern_config(
            data["pattern"], load_yaml(data["config_yaml"]), agent_count=len(data["agents"])
        )


@pytest.mark.django_db
def test_a_changed_file_updates_its_template_in_place_keeping_downloads(data_dir):
    official_templates_load(directory=data_dir)
    template = AgentTemplate.objects.get(slug="translator")
    AgentTemplate.objects.filter(pk=template.pk).update(downloads=7)
    path = data_dir / "agents" / "translator.yaml"
    path.write_text(path.read_text().replace("name: Translator", "name: Professional translator"))

    report = official_templates_load(directory=data_dir)

    assert (report.agents.created, report.agents.updated) == (0, 1)
    template.refresh_from_db()
    assert template.name == "Professional translator" and template.downloads == 7
    assert AgentTemplate.objects.filter(slug="translator").count() == 1
    audit = AuditLog.objects.filter(record_id=template.pk, operation_type="update").get()
    assert audit.changes["fields"] == ["name"] and audit.organization_id is None


@pytest.mark.django_db
def test_an_invalid_file_is_reported_with_its_path_and_nothing_is_written(data_dir):
    path = data_dir / "agents" / "translator.yaml"
    path.write_text(path.read_text().replace("temperature: 0.2", "temperature: 9"))
    (data_dir / "orchestrations" / "support-desk.yaml").write_text(
        "slug: support-desk\nname: Desk\npattern: router\nagents: [no-such-agent]\n"
    )
    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)
    assert any("agents/translator.yaml: config_yaml.config.temperature" in e for e in raised.value.errors)
    assert AgentTemplate.objects.count() == 0 and OrchestrationTemplate.objects.count() == 0

    path.write_text(path.read_text().replace("temperature: 9", "temperature: 0.2"))
    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)
    assert raised.value.errors == [
        "orchestrations/support-desk.yaml: agents[0]: no official agent template 'no-such-agent'"
    ]
    assert AgentTemplate.objects.count() == 0


@pytest.mark.django_db
def test_the_management_command_loads_idempotently_and_says_what_it_did():
    out = StringIO()
    call_command("load_templates", stdout=out)
    assert f"Official agent templates: {len(AGENT_FILES)} created, 0 updated, 0 unchanged." in out.getvalue()
    out = StringIO()
    call_command("load_templates", stdout=out)
    assert (
        f"Official orchestration templates: 0 created, 0 updated, {len(ORCHESTRATION_FILES)} unchanged."
        in out.getvalue()
    )
    assert AgentTemplate.objects.count() == len(AGENT_FILES)


@pytest.mark.django_db
def test_the_management_command_fails_loudly_on_bad_data(data_dir):
    (data_dir / "agents" / "broken.yaml").write_text("slug: broken\nname: [not, a, string]\n")
    with pytest.raises(CommandError, match="agents/broken.yaml: name"):
        call_command("load_templates", directory=data_dir)
    assert AgentTemplate.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_key_in_a_file_is_reported_with_the_close_key(data_dir):
    path = data_dir / "agents" / "translator.yaml"
    original = path.read_text()
    path.write_text(original.replace("description:", "descripton:", 1))
    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)
    assert raised.value.errors == [
        "agents/translator.yaml: descripton: unknown key 'descripton'; did you mean 'description'?"
    ]

    path.write_text(original)
    (data_dir / "orchestrations" / "support-desk.yaml").write_text(
        "slug: support-desk\nname: Desk\npattern: router\nagents: []\ncolour: blue\n"
    )
    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)
    assert raised.value.errors == [
        "orchestrations/support-desk.yaml: colour: unknown key 'colour'; "
        "expected one of: slug, name, pattern, description, icon, agents, config_yaml"
    ]
    assert AgentTemplate.objects.count() == 0
