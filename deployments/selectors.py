"""Reads of deployments: the organization's deployments, their usage from the ledger, and the URLs
and commands that reach them."""

from __future__ import annotations

import shlex
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum

from deployments.models import Deployment, DeploymentKey
from observability.models import Run

KEY_PLACEHOLDER = "<api-key>"


def deployment_list(*, user) -> QuerySet[Deployment]:
    """The deployments of the user's organization, newest first. The pinned snapshot is left out:
    lists never need it."""
    return Deployment.objects.filter(organization_id=user.organization_id).defer("pinned")


def deployment_keys(*, deployment: Deployment) -> QuerySet[DeploymentKey]:
    return DeploymentKey.objects.filter(deployment=deployment).order_by("-created_at", "-id")


def deployment_usage(*, deployment: Deployment) -> dict[str, Any]:
    """What the deployment's calls used so far, summed by the database over its runs in the ledger."""
    totals = Run.objects.filter(
        organization_id=deployment.organization_id, deployment_id=deployment.pk
    ).aggregate(
        runs=Count("id"),
        completed=Count("id", filter=Q(status=Run.Status.COMPLETED)),
        failed=Count("id", filter=Q(status__in=[Run.Status.FAILED, Run.Status.CANCELLED])),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost_usd=Sum("cost_usd"),
        last_run_at=Max("created_at"),
    )
    input_tokens, output_tokens = totals["input_tokens"] or 0, totals["output_tokens"] or 0
    return {
        "runs": totals["runs"],
        "completed": totals["completed"],
        "failed": totals["failed"],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": totals["cost_usd"] or Decimal(0),
        "last_run_at": totals["last_run_at"],
    }


def deployment_api_url(deployment: Deployment) -> str | None:
    """Where the api channel answers; None when the deployment does not serve it."""
    if "api" not in deployment.channels:
        return None
    return f"{settings.PUBLIC_URL}/workflows/{deployment.name}/execute"


def deployment_mcp_url(deployment: Deployment) -> str | None:
    """Where the mcp channel answers; None when the deployment does not serve it."""
    if "mcp" not in deployment.channels:
        return None
    return f"{settings.PUBLIC_URL}/mcp/{deployment.name}"


def deployment_commands(deployment: Deployment, *, key: str | None = None) -> dict[str, str]:
    """Ready-to-paste commands of the channels the deployment serves: register the MCP server with
    Claude Code (`mcp_command`: HTTP transport, the key as a bearer header) and call the deployment
    with our CLI (`cli_command`). Without `key`, a placeholder stands in."""
    key = key or KEY_PLACEHOLDER
    name = deployment.name
    commands = {}
    if "mcp" in deployment.channels:
        commands["mcp_command"] = (
            f"claude mcp add --transport http {name} {deployment_mcp_url(deployment)} "
            f"--header {shlex.quote(f'Authorization: Bearer {key}')}"
        )
    if "cli" in deployment.channels:
        example = (
            " ".join(f"--input {shlex.quote(field + '=...')}" for field in _required_inputs(deployment))
            or "--json '{}'"
        )
        commands["cli_command"] = (
            f"studio execute {name} --url {shlex.quote(settings.PUBLIC_URL)} "
            f"--key {shlex.quote(key)} {example}"
        )
    return commands


def deployment_reach(deployment: Deployment, *, key: str | None = None) -> dict[str, str]:
    """The URLs and commands of the channels the deployment serves, and of those only: `api_url`
    (api), `mcp_url` and `mcp_command` (mcp), `cli_command` (cli)."""
    urls = {"api_url": deployment_api_url(deployment), "mcp_url": deployment_mcp_url(deployment)}
    return {**{field: url for field, url in urls.items() if url}, **deployment_commands(deployment, key=key)}


def _required_inputs(deployment: Deployment) -> list[str]:
    pinned = deployment.pinned or {}
    entry = pinned.get("agent") or (pinned.get("agents") or [None])[0]
    if not entry:
        return []
    fields = entry.get("config", {}).get("signature", {}).get("inputs", [])
    return [field["name"] for field in fields if field.get("required", True)]
