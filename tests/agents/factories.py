"""Agents for tests (their configs: tests/agents/agent_configs.py)."""

from __future__ import annotations

import itertools

from agents.config_schema import parse_agent_config
from agents.models import Agent
from tests.agents.agent_configs import agent_yaml

_seq = itertools.count(1)


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
