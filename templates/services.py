"""Writes of templates: using one (an agent, or agents plus an orchestration, in the caller's
organization), saving an agent as an organization's template and operators' edits (loading the
official templates is templates.official). Each write is a transaction that audits itself.

Templates name a provider kind, never an account. `use` gives the new agents the organization's
org-wide config of that kind (its default, else its oldest active one, as the gateway resolves it),
pinned as `provider.provider_id`; when the organization has none, the agents use the offline `mock`
provider (`mock-1`) and the result says it fell back, scripted by the template's `mock_responses`
when it has them (so a template that calls tools shows them at work offline).

A template's MCP tools name their server by a slot (templates.slots); `use` takes the caller's
server for each slot (`mcp_servers`), and a missing, unknown or unfit one is a 400 at
`mcp_servers.<slot>`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from django.db import transaction
from django.db.models import F

from agents.config_schema import validate_agent_config
from agents.models import Agent
from agents.runtime.types import AgentConfig
from agents.runtime.validation import ConfigError, Errors, error
from agents.selectors import agent_list
from agents.services import agent_config_parse, agent_create, invalid_config
from agents.yaml_loader import load_yaml
from orchestrations.models import Orchestration
from orchestrations.patterns import PATTERNS, validate_pattern_config
from orchestrations.services import orchestration_create
from providers.gateway import provider_config_resolve
from providers.llm.mock_adapter import MOCK_MODEL
from providers.llm.types import ProviderNotConfigured
from studio.api.errors import ApiError
from studio.audit import audit_record
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.slots import (
    slot_errors,
    slot_indexes,
    slots_held,
    slots_restored,
    template_slots,
    tools_filled,
)
from templates.yaml_rewrite import config_yaml_with

MOCK = "mock"
NAME_MAX = 120


# --- config checks -------------------------------------------------------------------------------


def agent_template_config_parse(
    config_yaml: str, *, official: bool, mock_responses: Sequence[Any] = ()
) -> dict[str, Any]:
    """The normalized config of an agent template (its MCP slots kept); raises ConfigError. Beyond
    the agent schema, a template names no provider account (`use` picks one), an official one
    offers no organization's agents or servers (MCP tools by slot only), and `mock_responses` must
    be a valid mock script (`provider.responses`) for this config."""
    document = load_yaml(config_yaml)
    errors = slot_errors(document)
    try:
        config = validate_agent_config(slots_held(document))
    except ConfigError as failure:
        raise ConfigError([*errors, *failure.errors]) from None
    if config["provider"]["provider_id"] is not None:
        message = "a template names a provider kind, not an account; `use` picks the organization's"
        errors.append(error("provider.provider_id", message))
    if official:
        slots = slot_indexes(document.get("tools") or [])
        message = "an official template names no organization's agent or MCP server: {slot: NAME} only"
        errors += [
            error(f"tools[{index}]", message) for index in range(len(config["tools"])) if index not in slots
        ]
    if mock_responses and not errors:
        errors += _mock_script_errors(config, mock_responses)
    if errors:
        raise ConfigError(errors)
    return slots_restored(config, document)


def _mock_script_errors(config: dict[str, Any], mock_responses: Sequence[Any]) -> Errors:
    """A template's `mock_responses` checked as the `provider.responses` they become on mock."""
    section = {"provider": MOCK, "model": MOCK_MODEL, "responses": mock_responses}
    try:
        validate_agent_config({**config, "provider": section})
    except ConfigError as failure:
        return [
            error("mock_responses" + e["path"].removeprefix("provider.responses"), e["message"])
            for e in failure.errors
        ]
    return []


def orchestration_template_config_parse(
    *, pattern: str, config_yaml: str, agent_template_ids: Sequence[str]
) -> dict[str, Any]:
    """The validated pattern config of an orchestration template with its number of positions;
    raises ConfigError (same rules as an orchestration's config)."""
    data = load_yaml(config_yaml) if config_yaml.strip() else {}
    return validate_pattern_config(pattern, data, agent_count=len(agent_template_ids))


# --- provider choice -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderChoice:
    """The provider an agent made from a template got. `fallback`: the organization has no config
    of the template's kind, so the agent uses the mock provider."""

    kind: str
    model: str
    provider_id: str | None
    fallback: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def provider_choose(*, organization_id: str, kind: str, model: str) -> ProviderChoice:
    """The organization's org-wide config of `kind` (as the gateway resolves it), else mock."""
    if kind == MOCK:
        return ProviderChoice(kind=MOCK, model=model, provider_id=None, fallback=False)
    try:
        config = provider_config_resolve(
            organization_id=organization_id, user_id=None, kind=kind, provider_id=None
        )
    except ProviderNotConfigured:
        return ProviderChoice(kind=MOCK, model=MOCK_MODEL, provider_id=None, fallback=True)
    return ProviderChoice(kind=kind, model=model, provider_id=config.pk, fallback=False)


def _retargeted(template: AgentTemplate, cache: dict[str, ProviderChoice], organization_id: str):
    """The template's config YAML pointed at the organization's provider, and that choice. `cache`
    keeps one resolution per provider kind across the agents of one `use`."""
    provider = AgentConfig.from_dict(template.config).provider
    kind, model = provider["provider"], provider["model"]
    if kind not in cache:
        cache[kind] = provider_choose(organization_id=organization_id, kind=kind, model=model)
    choice = cache[kind] if cache[kind].fallback else replace(cache[kind], model=model)
    if kind == MOCK:  # a mock template keeps its section as written (scripted responses, latency)
        return template.config_yaml, choice
    section = {"provider": choice.kind, "model": choice.model}
    if choice.provider_id is not None:
        section["provider_id"] = choice.provider_id
    if choice.fallback and template.mock_responses:
        section["responses"] = template.mock_responses
    return config_yaml_with(template.config_yaml, "provider", section), choice


# --- MCP server slots ----------------------------------------------------------------------------


def _slots_checked(configs: Iterable[Mapping[str, Any]], mcp_servers: Mapping[str, str]) -> None:
    """A 400 at `mcp_servers.<slot>` for each slot of the templates not given a server, and for each
    server given to a slot they do not have."""
    needed = {entry["slot"]: entry["tools"] for entry in template_slots(configs)}
    fields = {
        f"mcp_servers.{slot}": [
            f"This template needs one of your MCP servers here, offering {', '.join(tools)}."
        ]
        for slot, tools in needed.items()
        if slot not in mcp_servers
    }
    known = ", ".join(needed) or "none"
    fields |= {
        f"mcp_servers.{slot}": [f"This template has no MCP server slot {slot!r} (its slots: {known})."]
        for slot in mcp_servers
        if slot not in needed
    }
    if fields:
        raise ApiError(400, "validation_error", next(iter(fields.values()))[0], fields=fields)


def _slots_filled(config_yaml: str, *, user, mcp_servers: Mapping[str, str]) -> str:
    """`config_yaml` with each slot given its server, checked as the agent will be (the schema, the
    organization's servers and their allow-lists); an unfit server is a 400 at its slot."""
    tools = load_yaml(config_yaml).get("tools") or []
    slots = slot_indexes(tools)
    if not slots:
        return config_yaml
    filled = config_yaml_with(config_yaml, "tools", tools_filled(tools, mcp_servers))
    try:
        agent_config_parse(organization_id=user.organization_id, config_yaml=filled, user=user)
    except ConfigError as failure:
        fields: dict[str, list[str]] = {}
        for problem in failure.errors:
            index = _tool_index(problem["path"])
            if index in slots:
                fields.setdefault(f"mcp_servers.{slots[index]}", []).append(problem["message"])
        if fields:
            raise ApiError(400, "validation_error", next(iter(fields.values()))[0], fields=fields) from None
    return filled


def _tool_index(path: str) -> int | None:
    """N of a config error's path `tools[N]...`, else None."""
    if not path.startswith("tools["):
        return None
    number, _, _ = path.removeprefix("tools[").partition("]")
    return int(number) if number.isdigit() else None


# --- use -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentFromTemplate:
    agent: Agent
    provider: ProviderChoice
    template_id: str
    role: str = ""


@dataclass(frozen=True)
class OrchestrationFromTemplate:
    orchestration: Orchestration
    agents: list[AgentFromTemplate] = field(default_factory=list)


def agent_template_use(
    *, user, template: AgentTemplate, name: str, mcp_servers: Mapping[str, str] | None = None
) -> AgentFromTemplate:
    """Creates an agent of the user's organization from `template` and counts the download, in one
    transaction. The agent's provider and MCP servers: see the module docstring."""
    mcp_servers = mcp_servers or {}
    _slots_checked([template.config], mcp_servers)
    with transaction.atomic():
        made = _agent_from_template(
            user=user, template=template, name=name, cache={}, mcp_servers=mcp_servers
        )
        _count_download(template)
        audit_record(
            actor=user,
            organization_id=user.organization_id,
            operation="use",
            instance=template,
            changes={
                "name": name,
                "agent_id": made.agent.pk,
                "provider": made.provider.as_dict(),
                "mcp_servers": dict(mcp_servers),
            },
        )
    return made


def orchestration_template_use(
    *, user, template: OrchestrationTemplate, name: str, mcp_servers: Mapping[str, str] | None = None
) -> OrchestrationFromTemplate:
    """Creates one agent per position of `template` (each from the agent template of that position's
    role) and the orchestration over them, in the user's organization, and counts the download: all
    in one transaction. A template whose agent templates are gone is a 409 `template_incomplete`.
    `mcp_servers` fills the slots of all its agent templates (a slot name means one server)."""
    mcp_servers = mcp_servers or {}
    agent_templates = _position_templates(user=user, template=template)
    _slots_checked([agent_template.config for agent_template in agent_templates], mcp_servers)
    roles = PATTERNS[template.pattern].roles_for(len(agent_templates))
    names = _unique(f"{name}: {agent_template.name}" for agent_template in agent_templates)
    cache: dict[str, ProviderChoice] = {}
    with transaction.atomic():
        agents = [
            _agent_from_template(
                user=user,
                template=agent_template,
                name=agent_name,
                cache=cache,
                role=role,
                mcp_servers=mcp_servers,
            )
            for agent_template, agent_name, role in zip(agent_templates, names, roles, strict=True)
        ]
        orchestration = orchestration_create(
            user=user,
            name=name,
            pattern=template.pattern,
            agent_ids=[made.agent.pk for made in agents],
            config_yaml=template.config_yaml,
            description=template.description,
        )
        _count_download(template)
        audit_record(
            actor=user,
            organization_id=user.organization_id,
            operation="use",
            instance=template,
            changes={
                "name": name,
                "orchestration_id": orchestration.pk,
                "agent_ids": orchestration.agent_ids,
                "providers": [made.provider.as_dict() for made in agents],
                "mcp_servers": dict(mcp_servers),
            },
        )
    return OrchestrationFromTemplate(orchestration=orchestration, agents=agents)


def _agent_from_template(
    *,
    user,
    template: AgentTemplate,
    name: str,
    cache: dict[str, ProviderChoice],
    mcp_servers: Mapping[str, str],
    role: str = "",
) -> AgentFromTemplate:
    config_yaml, choice = _retargeted(template, cache, user.organization_id)
    config_yaml = _slots_filled(config_yaml, user=user, mcp_servers=mcp_servers)
    agent = agent_create(
        user=user,
        name=name[:NAME_MAX],
        config_yaml=config_yaml,
        agent_type=template.agent_type,
        description=template.description,
    )
    return AgentFromTemplate(agent=agent, provider=choice, template_id=template.pk, role=role)


def _position_templates(*, user, template: OrchestrationTemplate) -> list[AgentTemplate]:
    found = AgentTemplate.objects.visible_to(user).in_bulk(template.agent_template_ids)
    missing = [template_id for template_id in template.agent_template_ids if template_id not in found]
    if missing:
        raise ApiError(
            409,
            "template_incomplete",
            f"The agent templates {', '.join(missing)} of this orchestration template no longer exist.",
        )
    return [found[template_id] for template_id in template.agent_template_ids]


def _unique(names: Iterable[str]) -> list[str]:
    """Names made unique by position ("Panel: Moderator", "Panel: Moderator (2)")."""
    unique: list[str] = []
    for base in names:
        candidate, n = base[:NAME_MAX], 1
        while candidate in unique:
            n += 1
            suffix = f" ({n})"
            candidate = base[: NAME_MAX - len(suffix)] + suffix
        unique.append(candidate)
    return unique


def _count_download(template: AgentTemplate | OrchestrationTemplate) -> None:
    # F(): concurrent uses each add one; a read-then-write would lose some.
    type(template).objects.filter(pk=template.pk).update(downloads=F("downloads") + 1)


# --- organizations' own templates ----------------------------------------------------------------


def agent_template_create(
    *,
    user,
    agent_id: str,
    name: str,
    category: str,
    description: str | None = None,
    icon: str = "",
) -> AgentTemplate:
    """Saves one of the organization's agents as a template only that organization sees. The config
    is copied without its `provider.provider_id` (a template names a provider kind; `use` picks
    the account)."""
    agent = agent_list(user=user).filter(pk=agent_id).first()
    if agent is None:
        message = "No agent with this id in your organization."
        raise ApiError(400, "validation_error", message, fields={"agent_id": [message]})
    config_yaml = _without_provider_account(agent.config_yaml)
    try:
        config = agent_template_config_parse(config_yaml, official=False)
    except ConfigError as failure:
        raise invalid_config(failure, subject="template") from None
    with transaction.atomic():
        template = AgentTemplate.objects.create(
            organization_id=user.organization_id,
            name=name,
            description=agent.description if description is None else description,
            category=category,
            agent_type=agent.agent_type,
            icon=icon,
            config_yaml=config_yaml,
            config=config,
            is_official=False,
            created_by=user,
        )
        audit_record(
            actor=user,
            organization_id=user.organization_id,
            operation="create",
            instance=template,
            changes={"name": name, "category": category, "source_agent_id": agent.pk},
        )
    return template


def _without_provider_account(config_yaml: str) -> str:
    provider = load_yaml(config_yaml).get("provider")
    if not isinstance(provider, dict) or "provider_id" not in provider:
        return config_yaml
    return config_yaml_with(
        config_yaml, "provider", {k: v for k, v in provider.items() if k != "provider_id"}
    )


# --- operators' edits (the admin) ----------------------------------------------------------------

_NOT_AUDITED = ("config", "config_yaml")


def template_save(
    *, user, template: AgentTemplate | OrchestrationTemplate, changed: Iterable[str], created: bool
) -> None:
    """Saves a template an operator created or edited (with its config already validated) and
    audits the change."""
    changed = list(changed)
    changes = {name: _plain(getattr(template, name)) for name in changed if name not in _NOT_AUDITED}
    if "config_yaml" in changed:
        changes["config_yaml"] = "changed"
    with transaction.atomic():
        template.save()
        audit_record(
            actor=user,
            organization_id=template.organization_id,
            operation="create" if created else "update",
            instance=template,
            changes=changes,
        )


def _plain(value: Any) -> Any:
    return getattr(value, "pk", value)
