"""Writes of agents: create, update, restore a version, delete. Each one is a transaction that
audits itself.

Versions: an agent starts at 1.0.0. A change of `config_yaml` that changes the validated config
stores the config it replaces as an `AgentVersion` and bumps the version, minor when the
signature's interface changes (an input or output added, removed, renamed, retyped, made optional
or given other enum values) and patch for everything else (prompt, descriptions, provider, config,
tools), as `agents.config_schema.version_bump` decides. A new YAML text with the same config (comments,
formatting) is kept without a new version. The other fields change in place."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.config_schema import parse_agent_config, version_bump
from agents.mcp_tools import headers_sealed, mcp_url_problem
from agents.models import Agent, AgentVersion, McpServer
from agents.runtime.validation import ConfigError
from agents.selectors import agent_dependents, agent_version_list, mcp_server_dependents
from agents.versions import clip_summary, describe_change, next_version
from providers.crypto import secrets_rotate
from providers.gateway import provider_config_resolve
from providers.llm.types import ProviderNotConfigured
from providers.llm.urlsafety import url_origin
from studio.api.errors import ApiError
from studio.audit import audit_record
from studio.changes import apply_changes

UPDATABLE_FIELDS = ("name", "description", "agent_type", "status", "is_public", "config_yaml")


# --- config checks -------------------------------------------------------------------------------


def agent_config_parse(
    *, organization_id: str, config_yaml: str, user=None, agent: Agent | None = None
) -> dict[str, Any]:
    """Parses and validates an agent config YAML for an organization; raises ConfigError.

    Beyond the schema: `provider.provider_id` must be an active config of that kind in the
    organization, org-wide or `user`'s own, every `tools[].agent_id` an agent of the same
    organization other than `agent` itself, and every `tools[].mcp_server` an MCP server of the
    organization that allows `tools[].tool`."""

    def provider_exists(kind: str, provider_id: str) -> bool:
        try:
            found = provider_config_resolve(
                organization_id=organization_id,
                user_id=getattr(user, "pk", None),
                kind=kind,
                provider_id=provider_id,
            )
        except ProviderNotConfigured:
            return False
        return found is not None

    config = parse_agent_config(config_yaml, provider_exists=provider_exists)
    _check_tools(config["tools"], organization_id=organization_id, agent=agent)
    return config


def _check_tools(tools: list[dict[str, Any]], *, organization_id: str, agent: Agent | None) -> None:
    if not tools:
        return
    errors = [
        *_agent_tool_errors(tools, organization_id=organization_id, agent=agent),
        *_mcp_tool_errors(tools, organization_id=organization_id),
    ]
    if errors:
        raise ConfigError(sorted(errors, key=lambda item: item["path"]))


def _agent_tool_errors(tools: list[dict[str, Any]], *, organization_id: str, agent: Agent | None) -> list:
    wanted = {index: tool["agent_id"] for index, tool in enumerate(tools) if "agent_id" in tool}
    known = set(
        Agent.objects.filter(organization_id=organization_id, pk__in=wanted.values()).values_list(
            "pk", flat=True
        )
    )
    errors = []
    for index, agent_id in wanted.items():
        path = f"tools[{index}].agent_id"
        if agent is not None and agent_id == agent.pk:
            errors.append({"path": path, "message": "an agent cannot be its own tool"})
        elif agent_id not in known:
            errors.append({"path": path, "message": f"no agent {agent_id!r} in this organization"})
    return errors


def _mcp_tool_errors(tools: list[dict[str, Any]], *, organization_id: str) -> list:
    """An MCP entry's server must be one of the organization's, and its tool within the server's
    allow-list when it has one. (The live server is not asked at save time: it may be down, and
    a tool it drops later is reported to the model when called.)"""
    wanted = {index: tool for index, tool in enumerate(tools) if "mcp_server" in tool}
    servers = {
        server.pk: server
        for server in McpServer.objects.filter(
            organization_id=organization_id, pk__in={tool["mcp_server"] for tool in wanted.values()}
        )
    }
    errors = []
    for index, tool in wanted.items():
        server = servers.get(tool["mcp_server"])
        if server is None:
            message = f"no MCP server {tool['mcp_server']!r} in this organization"
            errors.append({"path": f"tools[{index}].mcp_server", "message": message})
        elif not server.allows(tool["tool"]):
            allowed = ", ".join(server.allowed_tools) or "none"
            message = (
                f"the MCP server {server.name!r} does not allow the tool {tool['tool']!r} "
                f"(allowed: {allowed})"
            )
            errors.append({"path": f"tools[{index}].tool", "message": message})
    return errors


def invalid_config(error: ConfigError, *, subject: str = "agent") -> ApiError:
    """The 400 for a config that does not validate: every error with its path under `config_yaml`."""
    first = error.errors[0]
    where = first["path"] or "the document"
    message = f"The {subject} config is invalid ({where}: {first['message']})"
    return ApiError(400, "invalid_config", message, fields={"config_yaml": error.errors})


def _parsed(**kwargs) -> dict[str, Any]:
    try:
        return agent_config_parse(**kwargs)
    except ConfigError as error:
        raise invalid_config(error) from None


# --- writes --------------------------------------------------------------------------------------


def agent_create(
    *,
    user,
    name: str,
    config_yaml: str,
    agent_type: str = Agent.AgentType.CUSTOM,
    description: str = "",
    status: str = Agent.Status.DRAFT,
    is_public: bool = False,
) -> Agent:
    """Creates an agent of the user's organization at version 1.0.0 from a validated config."""
    config = _parsed(organization_id=user.organization_id, user=user, config_yaml=config_yaml)
    with transaction.atomic():
        agent = Agent.objects.create(
            organization_id=user.organization_id,
            name=name,
            description=description,
            agent_type=agent_type,
            config_yaml=config_yaml,
            config=config,
            status=status,
            is_public=is_public,
            created_by=user,
        )
        audit_record(
            actor=user,
            organization_id=agent.organization_id,
            operation="create",
            instance=agent,
            changes={
                "name": agent.name,
                "agent_type": agent.agent_type,
                "status": agent.status,
                "is_public": agent.is_public,
                "version": agent.version,
            },
        )
    return agent


def agent_update(*, user, agent: Agent, change_summary: str | None = None, **fields) -> Agent:
    """Changes an agent. A `config_yaml` whose validated config differs from the current one stores
    the current config as an AgentVersion (with `change_summary`, or one generated from the
    difference) and bumps the version: minor for a signature interface change, patch otherwise.
    Other fields change in place."""
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"agent_update() cannot change {', '.join(sorted(unknown))}")
    config_yaml = fields.pop("config_yaml", None)
    config = None
    if config_yaml is not None and config_yaml != agent.config_yaml:
        config = _parsed(
            organization_id=agent.organization_id, user=user, config_yaml=config_yaml, agent=agent
        )
    with transaction.atomic():
        return _change(
            _locked(agent),
            user=user,
            fields=fields,
            new_config=(config_yaml, config) if config is not None else None,
            summary=change_summary,
            operation="update",
        )


def agent_restore_version(*, user, agent: Agent, version: str) -> Agent:
    """Makes the config of an earlier version current again. Restoring is a change like any other:
    the current config is stored as a version and the restored one becomes current under a bumped
    version. The restored config is validated again (its provider or tool agents may be gone)."""
    snapshot = agent_version_list(agent=agent).filter(version=version).first()
    if snapshot is None:
        raise ApiError(404, "not_found", f"Agent version {version!r} not found.")
    config = _parsed(
        organization_id=agent.organization_id, user=user, config_yaml=snapshot.config_yaml, agent=agent
    )
    with transaction.atomic():
        return _change(
            _locked(agent),
            user=user,
            fields={},
            new_config=(snapshot.config_yaml, config),
            summary=None,
            operation="restore",
            restored=version,
        )


def agent_delete(*, user, agent: Agent) -> None:
    """Deletes an agent; refused (409 `agent_in_use`) while an orchestration lists it or a running
    deployment serves it."""
    with transaction.atomic():
        agent = _locked(agent)
        dependents = agent_dependents(agent=agent)
        if dependents:
            more = len(dependents) - 5
            shown = ", ".join(dependents[:5]) + (f" and {more} more" if more > 0 else "")
            raise ApiError(
                409, "agent_in_use", f"The agent is still used by {shown}; remove it from them first."
            )
        audit_record(
            actor=user,
            organization_id=agent.organization_id,
            operation="delete",
            instance=agent,
            changes={"name": agent.name, "version": agent.version},
        )
        agent.delete()


# --- helpers -------------------------------------------------------------------------------------


def _locked(agent: Agent) -> Agent:
    """The agent's current row, locked until the transaction ends, so that concurrent changes
    each see the version the other wrote."""
    fresh = Agent.objects.select_for_update().filter(pk=agent.pk).first()
    if fresh is None:
        raise ApiError(404, "not_found", "Agent not found.")
    return fresh


def _change(
    agent: Agent,
    *,
    user,
    fields: dict[str, Any],
    new_config: tuple[str, dict[str, Any]] | None,
    summary: str | None,
    operation: str,
    restored: str | None = None,
) -> Agent:
    fields = dict(fields)
    noted: dict[str, Any] = {}
    if new_config is not None and new_config[0] != agent.config_yaml:
        config_yaml, config = new_config
        if config == agent.config:
            fields["config_yaml"] = config_yaml
            noted["config_yaml"] = "reformatted, same config"
        else:
            version = next_version(agent.version, version_bump(agent.config, config))
            generated = describe_change(agent.config, config)
            if restored is not None:
                generated = f"restored {restored}; {generated}"
            summary = clip_summary(summary or f"{agent.version} -> {version}: {generated}")
            AgentVersion.objects.create(
                agent=agent,
                version=agent.version,
                config_yaml=agent.config_yaml,
                config=agent.config,
                change_summary=summary,
                created_by=user,
            )
            fields.update(config_yaml=config_yaml, config=config, version=version)
            noted.update(previous_version=agent.version, change_summary=summary)
            if restored is not None:
                noted["restored_version"] = restored
    changes = apply_changes(agent, fields)
    if changes:
        changes.pop("config", None)
        changes.pop("config_yaml", None)
        audit_record(
            actor=user,
            organization_id=agent.organization_id,
            operation=operation,
            instance=agent,
            changes={**changes, **noted},
        )
    return agent


# --- MCP servers ---------------------------------------------------------------------------------

MCP_SERVER_FIELDS = ("name", "url", "allowed_tools")


def _require_safe_url(url: str) -> None:
    problem = mcp_url_problem(url)
    if problem is not None:
        raise ApiError(400, "unsafe_url", f"{problem}.", fields={"url": [problem]})


def _require_free_name(*, organization_id: str, name: str, server: McpServer | None = None) -> None:
    taken = McpServer.objects.filter(organization_id=organization_id, name=name)
    if server is not None:
        taken = taken.exclude(pk=server.pk)
    if taken.exists():
        message = f"An MCP server named {name!r} already exists in this organization."
        raise ApiError(400, "validation_error", message, fields={"name": [message]})


def _mcp_audited(server: McpServer) -> dict[str, Any]:
    # Header names and hints only: the values never leave the encrypted column.
    return {
        "name": server.name,
        "url": server.url,
        "headers": [header["name"] for header in server.headers_hint],
        "allowed_tools": server.allowed_tools,
    }


def mcp_server_create(
    *,
    actor,
    name: str,
    url: str,
    headers: dict[str, str] | None = None,
    allowed_tools: list[str] | None = None,
) -> McpServer:
    """Stores an MCP server of the actor's organization after checking its URL (the provider URL
    rules); its headers are stored encrypted, for the origin of this URL only."""
    _require_safe_url(url)
    _require_free_name(organization_id=actor.organization_id, name=name)
    encrypted, hint = headers_sealed(headers or {})
    server = McpServer(
        organization_id=actor.organization_id,
        name=name,
        url=url,
        headers_encrypted=encrypted,
        headers_hint=hint,
        headers_origin=url_origin(url) if encrypted else "",
        allowed_tools=allowed_tools,
        created_by=actor,
    )
    with transaction.atomic():
        server.save(force_insert=True)
        audit_record(
            actor=actor,
            organization_id=server.organization_id,
            operation="create",
            instance=server,
            changes=_mcp_audited(server),
        )
    return server


def mcp_server_update(
    *, actor, server: McpServer, headers: dict[str, str] | None = None, **fields
) -> McpServer:
    """Changes an MCP server. `headers` replaces every header ({} removes them). Pointing the URL at
    another origin while headers are stored needs them again in the same request."""
    unknown = set(fields) - set(MCP_SERVER_FIELDS)
    if unknown:
        raise TypeError(f"mcp_server_update() cannot change {', '.join(sorted(unknown))}")
    url = fields.get("url", server.url)
    if "url" in fields:
        _require_safe_url(url)
    if "name" in fields:
        _require_free_name(organization_id=server.organization_id, name=fields["name"], server=server)
    if headers is None and server.headers_encrypted and url_origin(url) != server.headers_origin:
        message = "Changing the scheme, host or port of the URL needs the headers in the same request."
        raise ApiError(
            400, "headers_required", message, fields={"headers": ["Required to change where they are sent."]}
        )
    if headers is not None:
        encrypted, hint = headers_sealed(headers)
        fields.update(
            headers_encrypted=encrypted,
            headers_hint=hint,
            headers_origin=url_origin(url) if encrypted else "",
        )
    with transaction.atomic():
        server = McpServer.objects.select_for_update().get(pk=server.pk)
        before = _mcp_audited(server)
        changes = apply_changes(server, fields)
        if changes:
            after = _mcp_audited(server)
            audit_record(
                actor=actor,
                organization_id=server.organization_id,
                operation="update",
                instance=server,
                changes={key: after[key] for key in after if after[key] != before[key]}
                | ({"headers_replaced": True} if "headers_encrypted" in changes else {}),
            )
    return server


def mcp_server_delete(*, actor, server: McpServer) -> None:
    """Deletes an MCP server; refused (409 `mcp_server_in_use`) while an agent's tools name it."""
    with transaction.atomic():
        users = mcp_server_dependents(server=server)
        if users:
            shown = ", ".join(repr(name) for name in users[:5]) + (
                f" and {len(users) - 5} more" if len(users) > 5 else ""
            )
            message = (
                f"The MCP server is still a tool source of the agents {shown}; remove it from them first."
            )
            raise ApiError(409, "mcp_server_in_use", message)
        audit_record(
            actor=actor,
            organization_id=server.organization_id,
            operation="delete",
            instance=server,
            changes=_mcp_audited(server),
        )
        server.delete()


def mcp_server_headers_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypts every MCP server's auth headers with the newest Fernet key (`secrets_rotate`)."""
    return secrets_rotate(McpServer.objects.all(), "headers_encrypted", batch_size=batch_size)
