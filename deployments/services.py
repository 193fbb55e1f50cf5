"""Writes of deployments: deploy, stop, start, redeploy, and their keys. Each one is a transaction
that audits itself; a key's secret is returned once and never stored or audited."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from agents.models import Agent
from deployments.keys import key_generate
from deployments.models import NAME_PATTERN, Deployment, DeploymentKey
from deployments.pinning import pin_agent, pin_orchestration
from observability.signals import ledger_event_on_commit
from orchestrations.models import Orchestration
from studio.api.errors import ApiError
from studio.audit import audit_record

DEFAULT_RATE_LIMIT_PER_MINUTE = 60
_NAME = re.compile(NAME_PATTERN)
_NAME_ATTEMPTS = 5


def _name_taken(name: str) -> ApiError:
    return ApiError(
        409, "name_taken", f"A deployment named {name!r} already exists.", fields={"name": ["Name taken."]}
    )


def _target(*, user, agent_id: str | None, orchestration_id: str | None) -> Agent | Orchestration:
    if bool(agent_id) == bool(orchestration_id):
        raise ApiError(
            400,
            "validation_error",
            "Give exactly one of agent_id and orchestration_id.",
            fields={"non_field_errors": ["Give exactly one of agent_id and orchestration_id."]},
        )
    model, pk = (Agent, agent_id) if agent_id else (Orchestration, orchestration_id)
    target = model.objects.filter(organization_id=user.organization_id, pk=pk).first()
    if target is None:
        raise ApiError(404, "not_found", f"{model.__name__} not found.")
    return target


def _pin(target: Agent | Orchestration):
    return pin_agent(target) if isinstance(target, Agent) else pin_orchestration(target)


def _free_name(base: str) -> str:
    """`base` when it is free, else `base-<6 hex>`; the unique constraint settles races."""
    base = (slugify(base)[:50].strip("-") or "deployment").lower()
    if not Deployment.objects.filter(name=base).exists():
        return base
    return f"{base}-{secrets.token_hex(3)}"


def deployment_create(
    *,
    user,
    agent_id: str | None = None,
    orchestration_id: str | None = None,
    name: str | None = None,
    channels: Sequence[str] = ("api", "mcp", "cli"),
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
) -> tuple[Deployment, str]:
    """Deploys an agent or orchestration of the user's organization, pinned to its current config,
    with a first key. Returns the deployment and that key's secret. A given name that is taken is a
    409; without one, a free name is derived from the agent's or orchestration's name."""
    target = _target(user=user, agent_id=agent_id, orchestration_id=orchestration_id)
    pinned, version = _pin(target)
    if name and not _NAME.match(name):
        raise ApiError(400, "validation_error", "Invalid name.", fields={"name": ["Invalid name."]})
    for _attempt in range(_NAME_ATTEMPTS):
        chosen = name or _free_name(target.name)
        try:
            with transaction.atomic():
                deployment = Deployment.objects.create(
                    organization_id=user.organization_id,
                    agent=target if isinstance(target, Agent) else None,
                    orchestration=target if isinstance(target, Orchestration) else None,
                    name=chosen,
                    channels=list(channels),
                    rate_limit_per_minute=rate_limit_per_minute,
                    pinned=pinned,
                    pinned_version=version,
                    pinned_at=timezone.now(),
                    created_by=user,
                )
                key, secret = _key_create(user=user, deployment=deployment)
                audit_record(
                    actor=user,
                    organization_id=deployment.organization_id,
                    operation="create",
                    instance=deployment,
                    changes={
                        "name": deployment.name,
                        "target": deployment.target_id,
                        "channels": deployment.channels,
                        "rate_limit_per_minute": deployment.rate_limit_per_minute,
                        "pinned_version": version,
                        "key_prefix": key.prefix,
                    },
                )
        except IntegrityError:
            if not Deployment.objects.filter(name=chosen).exists():
                raise
            if name:
                raise _name_taken(name) from None
            continue  # a derived name was taken meanwhile: derive another
        return deployment, secret
    raise _name_taken(chosen)


def deployment_stop(*, user, deployment: Deployment) -> Deployment:
    """Stops a deployment: every channel answers 404 for it until it is started again."""
    return _set_status(user=user, deployment=deployment, status=Deployment.Status.STOPPED)


def deployment_start(*, user, deployment: Deployment) -> Deployment:
    return _set_status(user=user, deployment=deployment, status=Deployment.Status.RUNNING)


def _set_status(*, user, deployment: Deployment, status: str) -> Deployment:
    with transaction.atomic():
        deployment = _locked(deployment)
        if deployment.status == status:
            return deployment
        now = timezone.now()
        deployment.status = status
        if status == Deployment.Status.RUNNING:
            deployment.started_at, deployment.stopped_at = now, None
        else:
            deployment.stopped_at = now
        deployment.save(update_fields=["status", "started_at", "stopped_at", "updated_at"])
        audit_record(
            actor=user,
            organization_id=deployment.organization_id,
            operation="start" if status == Deployment.Status.RUNNING else "stop",
            instance=deployment,
            changes={"status": status},
        )
        if status == Deployment.Status.STOPPED:
            ledger_event_on_commit(
                organization_id=deployment.organization_id,
                event="deployment.stopped",
                data={
                    "deployment_id": deployment.pk,
                    "name": deployment.name,
                    "stopped_at": now.isoformat(),
                    "stopped_by": getattr(user, "pk", None),
                },
            )
    return deployment


def deployment_redeploy(*, user, deployment: Deployment) -> Deployment:
    """Pins the deployment to the current config of its agent or orchestration."""
    with transaction.atomic():
        deployment = _locked(deployment)
        target = deployment.agent or deployment.orchestration
        pinned, version = _pin(target)
        previous = deployment.pinned_version
        deployment.pinned, deployment.pinned_version, deployment.pinned_at = pinned, version, timezone.now()
        deployment.save(update_fields=["pinned", "pinned_version", "pinned_at", "updated_at"])
        audit_record(
            actor=user,
            organization_id=deployment.organization_id,
            operation="redeploy",
            instance=deployment,
            changes={"pinned_version": {"from": previous, "to": version}},
        )
    return deployment


def deployment_key_create(*, user, deployment: Deployment) -> tuple[DeploymentKey, str]:
    """A new key for the deployment (the others keep working until revoked); returns the key and its
    secret, shown this once."""
    with transaction.atomic():
        key, secret = _key_create(user=user, deployment=deployment)
        audit_record(
            actor=user,
            organization_id=deployment.organization_id,
            operation="create",
            instance=key,
            changes={"deployment": deployment.pk, "prefix": key.prefix},
        )
    return key, secret


def deployment_key_revoke(*, user, deployment: Deployment, key_id: str) -> DeploymentKey:
    """Revokes one key of the deployment at once (404 for a key of another deployment)."""
    with transaction.atomic():
        key = DeploymentKey.objects.select_for_update().filter(deployment=deployment, pk=key_id).first()
        if key is None:
            raise ApiError(404, "not_found", "Deployment key not found.")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(
                actor=user,
                organization_id=deployment.organization_id,
                operation="revoke",
                instance=key,
                changes={"deployment": deployment.pk, "prefix": key.prefix},
            )
    return key


def _key_create(*, user, deployment: Deployment) -> tuple[DeploymentKey, str]:
    new = key_generate()
    key = DeploymentKey.objects.create(
        deployment=deployment, prefix=new.prefix, key_hash=new.hash, created_by=user
    )
    return key, new.secret


def _locked(deployment: Deployment) -> Deployment:
    fresh = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("agent", "orchestration")
        .filter(pk=deployment.pk)
        .first()
    )
    if fresh is None:
        raise ApiError(404, "not_found", "Deployment not found.")
    return fresh
