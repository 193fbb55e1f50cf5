"""Per-agent run statistics for runtime monitoring: executions in any run, from the agents' spans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import (
    Count,
    Max,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from observability.models import Run, Span
from observability.sql import MONEY, grouped_percentile

# Per-agent run statistics (runtime monitoring) -----------------------------------------------------


def agent_run_stats(
    *, organization_id: str, since: dt.datetime, agent_ids: Sequence[str] | None = None, latency: bool = True
) -> dict[str, dict]:
    """{agent_id: {runs, completed, failed, running, last_seen, p95_latency_ms}} from the agent's
    executions (its `agent` spans) started since `since`, in any run: its own, an orchestration's, a
    deployment's, another agent's tool call. `runs` counts the runs it took part in; completed, failed
    and running count its executions (two queries, one without `latency`; the spans' organization,
    kind, started_at index). `agent_ids` None means every agent of the organization."""
    spans = Span.objects.filter(organization_id=organization_id, kind=Span.Kind.AGENT, started_at__gte=since)
    if agent_ids is not None:
        spans = spans.filter(agent_id__in=list(agent_ids))
    rows = (
        spans.exclude(agent_id="")
        .order_by()
        .values("agent_id")
        .annotate(
            runs=Count("run_id", distinct=True),
            completed=Count("id", filter=Q(status="completed")),
            failed=Count("id", filter=Q(status="failed")),
            running=Count("id", filter=Q(status="running")),
            last_seen=Max(Coalesce("ended_at", "started_at")),
        )
    )
    stats = {row.pop("agent_id"): {**row, "p95_latency_ms": None} for row in rows}
    if latency and stats:
        finished = spans.filter(ended_at__isnull=False)
        for agent_id, value in grouped_percentile(
            finished, group_by="agent_id", field="duration_ms", fraction=0.95, newest_first="-started_at"
        ).items():
            if agent_id in stats:
                stats[agent_id]["p95_latency_ms"] = value
    return stats


def run_status_counts(*, organization_id: str, statuses: Sequence[str]) -> dict[str, int]:
    """{status: runs of the organization in that status now} for the given statuses (one query)."""
    rows = (
        Run.objects.filter(organization_id=organization_id, status__in=list(statuses))
        .order_by()
        .values("status")
        .annotate(n=Count("*"))
    )
    counts = dict.fromkeys(statuses, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def run_totals_by_kind_status(*, organization_id: str, since: dt.datetime) -> list[dict]:
    """Runs created since `since` per (kind, status), with their tokens and cost (one query)."""
    return list(
        Run.objects.filter(organization_id=organization_id, created_at__gte=since)
        .order_by()
        .values("kind", "status")
        .annotate(
            n=Count("*"),
            input=Coalesce(Sum("input_tokens"), 0),
            output=Coalesce(Sum("output_tokens"), 0),
            cost=Coalesce(Sum("cost_usd"), Value(Decimal(0)), output_field=MONEY),
        )
        .order_by("kind", "status")
    )
