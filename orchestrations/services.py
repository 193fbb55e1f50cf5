"""Writes of orchestrations: create, update, delete. Each one is a transaction that audits itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.db import transaction

from agents.models import Agent
from agents.runtime.validation import ConfigError
from agents.services import invalid_config
from agents.yaml_loader import load_yaml
from orchestrations.models import Orchestration
from orchestrations.patterns import validate_pattern_config
from studio.api.errors import ApiError
from studio.audit import audit_record
from studio.changes import apply_changes

UPDATABLE_FIELDS = ("name", "description", "pattern", "config_yaml", "agent_ids", "status")


def orchestration_config_parse(
    *, organization_id: str, pattern: str, config_yaml: str, agent_ids: Sequence[str]
) -> dict[str, Any]:
    """The validated pattern config; raises ConfigError naming every problem with its path: the
    YAML (same safety rules as agent configs), the pattern's keys, the agent count, and agents that
    are not in the organization."""
    data = load_yaml(config_yaml) if config_yaml.strip() else {}
    errors = []
    try:
        config = validate_pattern_config(pattern, data, agent_count=len(agent_ids))
    except ConfigError as error:
        errors += error.errors
        config = {}
    known = set(
        Agent.objects.filter(organization_id=organization_id, pk__in=agent_ids).values_list("pk", flat=True)
    )
    errors += [
        {"path": f"agent_ids[{index}]", "message": f"no agent {agent_id!r} in this organization"}
        for index, agent_id in enumerate(agent_ids)
        if agent_id not in known
    ]
    if errors:
        raise ConfigError(errors)
    return config


def _parsed(**kwargs) -> dict[str, Any]:
    try:
        return orchestration_config_parse(**kwargs)
    except ConfigError as error:
        raise invalid_config(error, subject="orchestration") from None


def orchestration_create(
    *,
    user,
    name: str,
    pattern: str,
    agent_ids: Sequence[str],
    config_yaml: str = "",
    description: str = "",
    status: str = Orchestration.Status.DRAFT,
) -> Orchestration:
    """Creates an orchestration of the user's organization from validated agents and config."""
    agent_ids = list(agent_ids)
    config = _parsed(
        organization_id=user.organization_id, pattern=pattern, config_yaml=config_yaml, agent_ids=agent_ids
    )
    with transaction.atomic():
        orchestration = Orchestration.objects.create(
            organization_id=user.organization_id,
            name=name,
            description=description,
            pattern=pattern,
            config_yaml=config_yaml,
            config=config,
            agent_ids=agent_ids,
            status=status,
            created_by=user,
        )
        audit_record(
            actor=user,
            organization_id=orchestration.organization_id,
            operation="create",
            instance=orchestration,
            changes={"name": name, "pattern": pattern, "agent_ids": agent_ids, "status": status},
        )
    return orchestration


def orchestration_update(*, user, orchestration: Orchestration, **fields) -> Orchestration:
    """Changes an orchestration; the pattern, agents and config are validated together."""
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"orchestration_update() cannot change {', '.join(sorted(unknown))}")
    if {"pattern", "config_yaml", "agent_ids"} & set(fields):
        fields["agent_ids"] = list(fields.get("agent_ids", orchestration.agent_ids))
        fields["config"] = _parsed(
            organization_id=orchestration.organization_id,
            pattern=fields.get("pattern", orchestration.pattern),
            config_yaml=fields.get("config_yaml", orchestration.config_yaml),
            agent_ids=fields["agent_ids"],
        )
    with transaction.atomic():
        changes = apply_changes(orchestration, fields)
        if changes:
            changes.pop("config", None)
            audit_record(
                actor=user,
                organization_id=orchestration.organization_id,
                operation="update",
                instance=orchestration,
                changes=changes,
            )
    return orchestration


def orchestration_delete(*, user, orchestration: Orchestration) -> None:
    """Deletes an orchestration; refused (409) while a running deployment serves it."""
    with transaction.atomic():
        if _running_deployments(orchestration):
            raise ApiError(
                409, "orchestration_in_use", "A running deployment serves this orchestration; stop it first."
            )
        audit_record(
            actor=user,
            organization_id=orchestration.organization_id,
            operation="delete",
            instance=orchestration,
            changes={"name": orchestration.name},
        )
        orchestration.delete()


def _running_deployments(orchestration: Orchestration) -> bool:
    """Deployments live in an app above this one: looked up by label."""
    deployment = apps.get_model("deployments", "Deployment")
    return deployment.objects.filter(orchestration_id=orchestration.pk, status="running").exists()
