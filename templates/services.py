"""Writes of templates: using one (an agent, or agents plus an orchestration, in the caller's
organization), saving an agent as an organization's template and operators' edits (loading the
official templates is templates.official). Each write is a transaction that audits itself.

Templates name a provider kind, never an account. `use` gives the new agents the organization's
org-wide config of that kind (its default, else its oldest active one, as the gateway resolves it),
pinned as `provider.provider_id`; when the organization has none, the agents use the offline `mock`
provider (`mock-1`) and the result says it fell back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from django.db import transaction
from django.db.models import F

from agents.config_schema import parse_agent_config
from agents.models import Agent
from agents.runtime.types import AgentConfig
from agents.runtime.validation import ConfigError
from agents.selectors import agent_list
from agents.services import agent_create, invalid_config
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
from templates.yaml_rewrite import config_yaml_with_provider

MOCK = "mock"
NAME_MAX = 120


# --- config checks -------------------------------------------------------------------------------


def agent_template_config_parse(config_yaml: str, *, official: bool) -> dict[str, Any]:
    """The normalized config of an agent template; raises ConfigError. Beyond the agent schema, a
    template names no provider account (`use` picks one) and an official one offers no tools
    (tools are agents of one organization)."""
    config = parse_agent_config(config_yaml)
    typed = AgentConfig.from_dict(config)
    errors = []
    if typed.provider["provider_id"] is not None:
        message = "a template names a provider kind, not an account; `use` picks the organization's"
        errors.append({"path": "provider.provider_id", "message": message})
    if official and typed.tools:
        errors.append(
            {"path": "tools", "message": "an official template cannot offer an organization's agents"}
        )
    if errors:
        raise ConfigError(errors)
    return config


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
    return config_yaml_with_provider(template.config_yaml, section), choice


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


def agent_template_use(*, user, template: AgentTemplate, name: str) -> AgentFromTemplate:
    """Creates an agent of the user's organization from `template` and counts the download, in one
    transaction. The agent's provider: see the module docstring."""
    with transaction.atomic():
        made = _agent_from_template(user=user, template=template, name=name, cache={})
        _count_download(template)
        audit_record(
            actor=user,
            organization_id=user.organization_id,
            operation="use",
            instance=template,
            changes={"name": name, "agent_id": made.agent.pk, "provider": made.provider.as_dict()},
        )
    return made


def orchestration_template_use(
    *, user, template: OrchestrationTemplate, name: str
) -> OrchestrationFromTemplate:
    """Creates one agent per position of `template` (each from the agent template of that position's
    role) and the orchestration over them, in the user's organization, and counts the download: all
    in one transaction. A template whose agent templates are gone is a 409 `template_incomplete`."""
    agent_templates = _position_templates(user=user, template=template)
    roles = PATTERNS[template.pattern].roles_for(len(agent_templates))
    names = _unique(f"{name}: {agent_template.name}" for agent_template in agent_templates)
    cache: dict[str, ProviderChoice] = {}
    with transaction.atomic():
        agents = [
            _agent_from_template(user=user, template=agent_template, name=agent_name, cache=cache, role=role)
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
            },
        )
    return OrchestrationFromTemplate(orchestration=orchestration, agents=agents)


def _agent_from_template(
    *, user, template: AgentTemplate, name: str, cache: dict[str, ProviderChoice], role: str = ""
) -> AgentFromTemplate:
    config_yaml, choice = _retargeted(template, cache, user.organization_id)
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
    except ConfigError as error:
        raise invalid_config(error, subject="template") from None
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
    return config_yaml_with_provider(config_yaml, {k: v for k, v in provider.items() if k != "provider_id"})


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
