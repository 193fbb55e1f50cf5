"""Loading the official templates shipped in `templates/official/` (one YAML file per template)
into the database, checked whole before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from agents.models import Agent
from agents.runtime.validation import ConfigError, Errors, check_known_keys, error, join
from agents.yaml_loader import load_yaml
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
    return [f"{label}: {e['path'] or '(document)'}: {e['message']}" for e in errors]


def _checked_keys(data: dict[str, Any], required: Sequence[str], optional: Sequence[str], errors: Errors):
    for key in required:
        if not isinstance(data.get(key), str) or not data[key].strip():
            errors.append(error(key, "is required (a non-empty string)"))
    check_known_keys(data, [*required, *optional], "", errors)


def _config_errors(failure: ConfigError) -> Errors:
    """A template's config errors by their path in the file (`mock_responses` is a key of its own)."""
    return [
        error(e["path"], e["message"])
        if e["path"].startswith("mock_responses")
        else error(join("config_yaml", e["path"]), e["message"])
        for e in failure.errors
    ]


def _read_agent_files(directory: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for label, data, problems in _read(directory):
        lines += problems
        if data is None:
            continue
        errors: Errors = []
        _checked_keys(
            data,
            ("slug", "name", "category", "agent_type", "config_yaml"),
            ("description", "icon", "mock_responses"),
            errors,
        )
        if data.get("category") not in AgentTemplate.Category.values:
            errors.append(error("category", f"must be one of {', '.join(AgentTemplate.Category.values)}"))
        if data.get("agent_type") not in Agent.AgentType.values:
            errors.append(error("agent_type", f"must be one of {', '.join(Agent.AgentType.values)}"))
        if data.get("slug") in entries:
            errors.append(error("slug", f"{data['slug']!r} is used by another file"))
        if not errors:
            try:
                config = agent_template_config_parse(
                    data["config_yaml"], official=True, mock_responses=data.get("mock_responses") or []
                )
            except ConfigError as failure:
                errors = _config_errors(failure)
        if errors:
            lines += _labelled(label, errors)
            continue
        entries[data["slug"]] = {
            "name": data["name"],
            "description": str(data.get("description") or "").strip(),
            "category": data["category"],
            "agent_type": data["agent_type"],
            "icon": data.get("icon", ""),
            "config_yaml": data["config_yaml"],
            "config": config,
            "mock_responses": data.get("mock_responses") or [],
        }
    if lines:
        raise TemplateDataError(lines)
    return entries


def _read_orchestration_files(directory: Path, *, known: set[str]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for label, data, problems in _read(directory):
        lines += problems
        if data is None:
            continue
        errors: Errors = []
        optional = ("description", "icon", "agents", "config_yaml")
        _checked_keys(data, ("slug", "name", "pattern"), optional, errors)
        slugs = data.get("agents")
        if not isinstance(slugs, list) or not all(isinstance(slug, str) for slug in slugs):
            errors.append(error("agents", "must be a list of agent template slugs, one per position"))
            slugs = []
        errors += [
            error(f"agents[{i}]", f"no official agent template {slug!r}")
            for i, slug in enumerate(slugs)
            if slug not in known
        ]
        if data.get("slug") in entries:
            errors.append(error("slug", f"{data['slug']!r} is used by another file"))
        config_yaml = data.get("config_yaml") or ""
        if not errors:
            try:
                config = orchestration_template_config_parse(
                    pattern=data["pattern"], config_yaml=config_yaml, agent_template_ids=slugs
                )
            except ConfigError as failure:
                errors = _config_errors(failure)
        if errors:
            lines += _labelled(label, errors)
            continue
        entries[data["slug"]] = {
            "name": data["name"],
            "description": str(data.get("description") or "").strip(),
            "pattern": data["pattern"],
            "icon": data.get("icon", ""),
            "config_yaml": config_yaml,
            "config": config,
            "agents": slugs,
        }
    if lines:
        raise TemplateDataError(lines)
    return entries
