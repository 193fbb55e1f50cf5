"""Agents for tests (their configs: tests/agents/agent_configs.py)."""

from __future__ import annotations

import itertools

from agents.config_schema import parse_agent_config
from agents.mcp_tools import headers_sealed
from agents.models import Agent, McpServer
from providers.llm.urlsafety import url_origin
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


def make_mcp_server(
    organization, *, url: str = "https://tools.example.com/mcp", headers=None, **fields
) -> McpServer:
    """An MCP server stored directly (no audit row, no URL check), its `headers` sealed like the API would."""
    encrypted, hint = headers_sealed(headers or {})
    fields.setdefault("name", f"MCP server {next(_seq)}")
    return McpServer.objects.create(
        organization=organization,
        url=url,
        headers_encrypted=encrypted,
        headers_hint=hint,
        headers_origin=url_origin(url) if encrypted else "",
        **fields,
    )
