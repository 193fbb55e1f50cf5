"""Reads of agents: the organization's agents, their history, and what still uses one."""

from __future__ import annotations

from django.apps import apps
from django.db import connection
from django.db.models import Q, QuerySet

from agents.models import Agent, AgentVersion, McpServer
from providers.gateway import provider_config_resolve
from providers.llm.types import ProviderNotConfigured


def agent_search_q(term: str) -> Q:
    """Agents whose name or description contains `term` (case-insensitive)."""
    return Q(name__icontains=term) | Q(description__icontains=term)


def agent_list(*, user) -> QuerySet[Agent]:
    """The agents of the user's organization, newest first (the API's filters narrow it)."""
    return Agent.objects.filter(organization_id=user.organization_id)


def agent_version_list(*, agent: Agent) -> QuerySet[AgentVersion]:
    """The configs the agent had before, newest first."""
    return AgentVersion.objects.filter(agent_id=agent.pk).order_by("-created_at", "-id")


def agent_dependents(*, agent: Agent) -> list[str]:
    """What keeps the agent from being deleted: the orchestrations that list it and the running
    deployments that serve it, as readable labels (empty when nothing does).

    Those models live in apps above this one, so they are looked up by label."""
    return [
        *(f"orchestration {name!r}" for name in _orchestrations_using(agent)),
        *(f"running deployment {name!r}" for name in _running_deployments_of(agent)),
    ]


def _orchestrations_using(agent: Agent) -> list[str]:
    orchestration = apps.get_model("orchestrations", "Orchestration")
    rows = orchestration.objects.filter(organization_id=agent.organization_id)
    if connection.features.supports_json_field_contains:
        return list(rows.filter(agent_ids__contains=[agent.pk]).values_list("name", flat=True))
    # SQLite has no JSON containment: the organization's orchestrations are few, scan their lists.
    return [name for name, ids in rows.values_list("name", "agent_ids") if agent.pk in (ids or [])]


def _running_deployments_of(agent: Agent) -> list[str]:
    deployment = apps.get_model("deployments", "Deployment")
    return list(deployment.objects.filter(agent_id=agent.pk, status="running").values_list("name", flat=True))


def agent_provider_base_url(*, user, agent: Agent) -> str | None:
    """The base URL of the provider config the agent's calls would use for `user`, if it has one."""
    provider = agent.config.get("provider") or {}
    try:
        config = provider_config_resolve(
            organization_id=agent.organization_id,
            user_id=user.pk,
            kind=provider.get("provider"),
            provider_id=provider.get("provider_id"),
        )
    except ProviderNotConfigured:
        return None
    return (config.api_base_url or None) if config is not None else None


def mcp_server_list(*, user) -> QuerySet[McpServer]:
    """The MCP servers of the user's organization, by name."""
    return McpServer.objects.filter(organization_id=user.organization_id)


def mcp_server_dependents(*, server: McpServer) -> list[str]:
    """The names of the organization's agents whose tools name the server."""
    agents = Agent.objects.filter(organization_id=server.organization_id)
    if connection.features.supports_json_field_contains:
        return list(
            agents.filter(config__tools__contains=[{"mcp_server": server.pk}]).values_list("name", flat=True)
        )
    # SQLite has no JSON containment: scan the organization's agents' tool lists.
    return [
        name
        for name, config in agents.values_list("name", "config")
        if any(tool.get("mcp_server") == server.pk for tool in (config or {}).get("tools") or [])
    ]
