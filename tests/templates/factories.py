"""Templates for tests: the official ones as shipped, and organizations' own."""

from __future__ import annotations

import itertools
from typing import Any

from agents.runtime.schema import conform
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.official import official_templates_load
from templates.services import agent_template_config_parse
from tests.agents.agent_configs import agent_yaml

_seq = itertools.count(1)

# One valid value per input type; an enum input takes its first value.
SAMPLE_VALUES = {
    "string": "My order #1042 arrived broken and I was charged twice.",
    "int": 3,
    "float": 0.5,
    "bool": True,
    "array": ["first", "second"],
    "object": {"term": "Begriff"},
}


def load_official() -> dict[str, AgentTemplate | OrchestrationTemplate]:
    """Loads the shipped official templates; returns them by slug."""
    official_templates_load()
    return {
        t.slug: t
        for model in (AgentTemplate, OrchestrationTemplate)
        for t in model.objects.filter(is_official=True)
    }


def make_agent_template(organization=None, *, config_yaml: str | None = None, **fields) -> AgentTemplate:
    """A template stored directly: an organization's own, or an official one when `organization` is None."""
    config_yaml = config_yaml if config_yaml is not None else agent_yaml()
    official = organization is None
    fields.setdefault("name", f"Template {next(_seq)}")
    if official:
        fields.setdefault("slug", f"test-template-{next(_seq)}")
    return AgentTemplate.objects.create(
        organization=organization,
        is_official=official,
        config_yaml=config_yaml,
        config=agent_template_config_parse(config_yaml, official=official),
        **fields,
    )


def sample_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """A valid value for every required input of an agent config."""
    return {
        field["name"]: field["enum_values"][0] if field["type"] == "enum" else SAMPLE_VALUES[field["type"]]
        for field in config["signature"]["inputs"]
        if field["required"]
    }


def assert_matches_outputs(output: dict[str, Any], config: dict[str, Any]) -> None:
    """Every declared output is present and of its declared type."""
    for field in config["signature"]["outputs"]:
        assert field["name"] in output, field["name"]
        conform(field, output[field["name"]])
