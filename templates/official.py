"""Loading the official templates shipped in `templates/official/` (one YAML file per template)
into the database, checked whole before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from agents.config_schema import MAX_MOCK_RESPONSES
from agents.models import Agent
from agents.runtime.validation import (
    Check,
    ConfigError,
    Errors,
    Key,
    choice,
    error,
    error_lines,
    fail,
    join,
    list_of,
    mapping,
    string,
)
from agents.yaml_loader import load_yaml
from orchestrations.patterns import PATTERNS
from studio.audit import audit_record
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.services import agent_template_config_parse, orchestration_template_config_parse

OFFICIAL_DIR = Path(__file__).resolve().parent / "official"


class TemplateDataError(Exception):
    """Official template files that do not load; `errors` names each file and path."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass
class LoadCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class LoadReport:
    agents: LoadCounts = field(default_factory=LoadCounts)
    orchestrations: LoadCounts = field(default_factory=LoadCounts)


_AGENT_FIELDS = (
    "name",
    "description",
    "category",
    "agent_type",
    "icon",
    "config_yaml",
    "config",
    "mock_responses",
)
_ORCHESTRATION_FIELDS = (
    "name",
    "description",
    "pattern",
    "icon",
    "config_yaml",
    "config",
    "agent_template_ids",
)


def official_templates_load(*, directory: Path = OFFICIAL_DIR) -> LoadReport:
    """Creates or updates the official templates described by the files of `directory` (`agents/`
    and `orchestrations/`, one YAML file each), keyed by their `slug`: loading twice changes
    nothing, a changed file updates its template in place (downloads kept). Every file is checked
    before anything is written (TemplateDataError lists every problem); templates no longer in
    the files are left alone."""
    agents = _read_agent_files(directory / "agents")
    orchestrations = _read_orchestration_files(directory / "orchestrations", known=set(agents))
    report = LoadReport()
    with transaction.atomic():
        agent_ids = _upsert(AgentTemplate, agents, _AGENT_FIELDS, report.agents)
        for entry in orchestrations.values():
            entry["agent_template_ids"] = [agent_ids[slug] for slug in entry.pop("agents")]
        _upsert(OrchestrationTemplate, orchestrations, _ORCHESTRATION_FIELDS, report.orchestrations)
    return report


def _upsert(model, entries: dict[str, dict[str, Any]], fields: Sequence[str], counts: LoadCounts) -> dict:
    existing = {
        t.slug: t for t in model.objects.select_for_update().filter(is_official=True, slug__in=entries)
    }
    ids = {}
    for slug, entry in entries.items():
        template = existing.get(slug)
        if template is None:
            template = model.objects.create(slug=slug, is_official=True, **{f: entry[f] for f in fields})
            audit_record(
                actor=None,
                organization_id=None,
                operation="create",
                instance=template,
                changes={"slug": slug, "name": template.name, "source": "official templates"},
            )
            counts.created += 1
        else:
            changed = [f for f in fields if getattr(template, f) != entry[f]]
            if changed:
                for name in changed:
                    setattr(template, name, entry[name])
                template.save(update_fields=[*changed, "updated_at"])
                audit_record(
                    actor=None,
                    organization_id=None,
                    operation="update",
                    instance=template,
                    changes={"slug": slug, "fields": changed, "source": "official templates"},
                )
                counts.updated += 1
            else:
                counts.unchanged += 1
        ids[slug] = template.pk
    return ids


def _read(directory: Path) -> list[tuple[str, dict[str, Any] | None, list[str]]]:
    """(file label, loaded mapping or None, errors) for each YAML file of `directory`."""
    read = []
    for path in sorted(directory.glob("*.yaml")):
        label = f"{directory.name}/{path.name}"
        try:
            read.append((label, load_yaml(path.read_text(encoding="utf-8")), []))
        except ConfigError as failure:
            read.append((label, None, _labelled(label, failure.errors)))
    return read


def _labelled(label: str, errors: Errors) -> list[str]:
    """`{path, message}` errors of one file as the lines TemplateDataError lists."""
    return error_lines(errors, f"{label}: ")


def _config_errors(failure: ConfigError) -> Errors:
    """A template's config errors by their path in the file (`mock_responses` is a key of its own)."""
    return [
        error(e["path"], e["message"])
        if e["path"].startswith("mock_responses")
        else error(join("config_yaml", e["path"]), e["message"])
        for e in failure.errors
    ]


def _text(model, name: str, *, non_empty: bool = False) -> Check:
    """A string that fits the model field it is stored in."""
    return string(max_length=model._meta.get_field(name).max_length, non_empty=non_empty)


def _as_given(value: Any, path: str, errors: Errors) -> Any:
    """A mock response, checked with the template's config (as its `provider.responses`)."""
    return value


_AGENT_FILE = mapping(
    {
        "slug": Key(_text(AgentTemplate, "slug", non_empty=True)),
        "name": Key(_text(AgentTemplate, "name", non_empty=True)),
        "category": Key(choice(AgentTemplate.Category.values)),
        "agent_type": Key(choice(Agent.AgentType.values)),
        "config_yaml": Key(string(non_empty=True)),
        "description": Key(_text(AgentTemplate, "description"), ""),
        "icon": Key(_text(AgentTemplate, "icon"), ""),
        "mock_responses": Key(list_of(_as_given, max_items=MAX_MOCK_RESPONSES), []),
    }
)


def _orchestration_file(known: set[str]) -> Check:
    """An orchestration template file, whose `agents` name agent templates of `known` slugs."""

    def agent_template(value: Any, path: str, errors: Errors) -> str | None:
        if value in known:
            return value
        return fail(errors, path, f"no official agent template {value!r}")

    return mapping(
        {
            "slug": Key(_text(OrchestrationTemplate, "slug", non_empty=True)),
            "name": Key(_text(OrchestrationTemplate, "name", non_empty=True)),
            "pattern": Key(choice(tuple(PATTERNS))),
            "description": Key(_text(OrchestrationTemplate, "description"), ""),
            "icon": Key(_text(OrchestrationTemplate, "icon"), ""),
            # One agent template per position of the orchestration.
            "agents": Key(list_of(agent_template, max_items=max(p.max_agents for p in PATTERNS.values()))),
            "config_yaml": Key(string(), ""),
        }
    )


def _read_files(directory: Path, check: Check, config: Callable[[dict[str, Any]], dict[str, Any]]) -> dict:
    """The entries of the files of `directory` by slug: each file checked by `check`, then given
    its `config` (which raises ConfigError); TemplateDataError lists every problem."""
    entries: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for label, data, problems in _read(directory):
        lines += problems
        if data is None:
            continue
        errors: Errors = []
        entry = check(data, "", errors)
        if entry and entry["slug"] in entries:
            errors.append(error("slug", f"{entry['slug']!r} is used by another file"))
        if not errors:
            try:
                entry["config"] = config(entry)
            except ConfigError as failure:
                errors = _config_errors(failure)
        if errors:
            lines += _labelled(label, errors)
            continue
        entries[entry.pop("slug")] = {**entry, "description": entry["description"].strip()}
    if lines:
        raise TemplateDataError(lines)
    return entries


def _read_agent_files(directory: Path) -> dict[str, dict[str, Any]]:
    def config(entry: dict[str, Any]) -> dict[str, Any]:
        return agent_template_config_parse(
            entry["config_yaml"], official=True, mock_responses=entry["mock_responses"]
        )

    return _read_files(directory, _AGENT_FILE, config)


def _read_orchestration_files(directory: Path, *, known: set[str]) -> dict[str, dict[str, Any]]:
    def config(entry: dict[str, Any]) -> dict[str, Any]:
        return orchestration_template_config_parse(
            pattern=entry["pattern"], config_yaml=entry["config_yaml"], agent_template_ids=entry["agents"]
        )

    return _read_files(directory, _orchestration_file(known), config)
