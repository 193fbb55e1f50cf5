"""Agents and their config YAML for tests."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import yaml

from agents.config_schema import parse_agent_config
from agents.models import Agent

_seq = itertools.count(1)


def agent_config(**sections: Any) -> dict[str, Any]:
    """A small valid config (mock provider, one input, one output); `sections` replace whole
    top-level sections (signature, provider, config, tools)."""
    config = {
        "signature": {
            "system_prompt": "You answer support questions.",
            "inputs": [{"name": "inquiry", "type": "string", "description": "The customer's message"}],
            "outputs": [{"name": "response", "type": "string", "description": "The reply"}],
        },
        "provider": {"provider": "mock", "model": "mock-1"},
        "config": {"temperature": 0.7},
    }
    config.update(copy.deepcopy(sections))
    return config


def agent_yaml(document: dict[str, Any] | None = None, **sections: Any) -> str:
    """YAML text of `document`, or of `agent_config(**sections)`."""
    return yaml.safe_dump(document if document is not None else agent_config(**sections), sort_keys=False)


def make_agent(organization, config_yaml: str | None = None, *, created_by=None, **fields) -> Agent:
    """The one way tests store an agent: directly (no audit row), its config (`config_yaml`, or
    `agent_yaml()`) parsed like the API would; `fields` are the model's (name, description, ...)."""
    config_yaml = config_yaml if config_yaml is not None else agent_yaml()
    fields.setdefault("name", f"Agent {next(_seq)}")
    return Agent.objects.create(
        organization=organization,
        config_yaml=config_yaml,
        config=parse_agent_config(config_yaml),
        created_by=created_by,
        **fields,
    )
