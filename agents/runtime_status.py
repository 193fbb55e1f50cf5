"""Runtime monitoring: how each agent of an organization is doing, from its executions (its
`agent` spans, in any run: its own, an orchestration's, a deployment's, another agent's tool call),
its circuit breaker (in the shared cache) and its monthly budget counter.

Health rule, first match wins (`agent_health`):

    unhealthy  the circuit breaker is open: calls to the agent are refused until the cool-down ends
    degraded   the breaker is half-open (probing after the cool-down), or success_rate_24h < 0.9
    idle       it did no work in the last 24 hours: no execution of it started, or only cancelled ones
    healthy    otherwise

runs_24h counts the runs it took part in since 24 hours ago. success_rate_24h = completed /
(completed + failed) over its executions started in that window (cancelled and unfinished ones
count for neither; null when none finished), so an agent whose only execution is still running is
healthy, not degraded, and one whose only execution was cancelled is idle, not healthy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from agents.breakers import breaker_states
from agents.models import Agent
from observability.agent_stats import agent_run_stats, run_status_counts, run_totals_by_kind_status
from observability.models import Run
from observability.sql import MONEY
from providers.budgets import current_month
from providers.models import BudgetCounter

HEALTH_WINDOW = dt.timedelta(hours=24)
DEGRADED_BELOW = 0.9
HEALTH_STATES = ("healthy", "degraded", "unhealthy", "idle")
BREAKER_STATES = ("closed", "half_open", "open")


def agent_health(*, breaker: str, worked_24h: int, success_rate_24h: float | None) -> str:
    """The health rule of the module docstring; `worked_24h` counts the executions of the window
    that were not cancelled."""
    if breaker == "open":
        return "unhealthy"
    if breaker == "half_open" or (success_rate_24h is not None and success_rate_24h < DEGRADED_BELOW):
        return "degraded"
    if worked_24h == 0:
        return "idle"
    return "healthy"


def _health(breaker: str, stats: dict) -> str:
    worked = stats.get("completed", 0) + stats.get("failed", 0) + stats.get("running", 0)
    return agent_health(breaker=breaker, worked_24h=worked, success_rate_24h=success_rate(stats))


def success_rate(stats: dict | None) -> float | None:
    finished = (stats or {}).get("completed", 0) + (stats or {}).get("failed", 0)
    return None if finished == 0 else stats["completed"] / finished


def _latest(*moments: dt.datetime | None) -> dt.datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def runtime_agent_list(*, organization_id: str) -> QuerySet:
    """The organization's agents (as dicts) by name, each with the time of its latest run's last
    sign of life, its spend this month and its monthly budget limit, in one query."""
    latest = (
        Run.objects.filter(organization_id=organization_id, agent_id=OuterRef("pk"))
        .order_by("-created_at")
        .values(seen=Coalesce("completed_at", "heartbeat_at", "created_at"))[:1]
    )
    spent = BudgetCounter.objects.filter(subject=OuterRef("pk"), month=current_month()).values("spent_usd")
    return (
        Agent.objects.filter(organization_id=organization_id)
        .order_by("name", "id")
        .values("id", "name", "status")
        .annotate(
            last_heartbeat=Subquery(latest),
            budget_used=Coalesce(
                Subquery(spent[:1], output_field=MONEY), Value(Decimal(0)), output_field=MONEY
            ),
            budget_limit=KT("config__config__budget_limit_usd"),
        )
    )


def _money(value: Any) -> Decimal | None:
    """A budget limit read from the config JSON (SQLite hands JSON null back as the text "null")."""
    if value in (None, "", "null"):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def runtime_agent_rows(
    *, organization_id: str, agents: list[dict], now: dt.datetime | None = None
) -> list[dict]:
    """Health rows for `agents` (dicts of `runtime_agent_list`): two queries (run statistics of
    the last 24 hours, their p95 latency) and one cache round trip for the breakers."""
    ids = [agent["id"] for agent in agents]
    if not ids:
        return []
    since = (now or timezone.now()) - HEALTH_WINDOW
    stats = agent_run_stats(organization_id=organization_id, since=since, agent_ids=ids)
    breakers = breaker_states(ids)
    rows = []
    for agent in agents:
        found = stats.get(agent["id"], {})
        rate = success_rate(found)
        rows.append(
            {
                "id": agent["id"],
                "name": agent["name"],
                "status": _health(breakers[agent["id"]], found),
                "agent_status": agent["status"],
                # Its own runs (of any age), or a later execution within another run.
                "last_heartbeat": _latest(agent["last_heartbeat"], found.get("last_seen")),
                "circuit_breaker_state": breakers[agent["id"]],
                "budget_used": agent["budget_used"],
                "budget_limit": _money(agent["budget_limit"]),
                "success_rate_24h": None if rate is None else round(rate, 4),
                "p95_latency_ms_24h": found.get("p95_latency_ms"),
                "runs_24h": found.get("runs", 0),
                "failures_24h": found.get("failed", 0),
            }
        )
    return rows


def runtime_status(*, organization_id: str, now: dt.datetime | None = None) -> dict:
    """Runs in flight and queued, and the health of every agent of the organization (three
    queries and one cache round trip, whatever the number of agents or runs)."""
    counts = run_status_counts(
        organization_id=organization_id, statuses=[Run.Status.RUNNING, Run.Status.QUEUED]
    )
    ids = list(Agent.objects.filter(organization_id=organization_id).values_list("id", flat=True))
    since = (now or timezone.now()) - HEALTH_WINDOW
    stats = agent_run_stats(organization_id=organization_id, since=since, latency=False)
    breakers = breaker_states(ids) if ids else {}
    health = [_health(breakers[agent_id], stats.get(agent_id, {})) for agent_id in ids]
    return {
        "active_runs": counts[Run.Status.RUNNING],
        "pending_tasks": counts[Run.Status.QUEUED],
        "active_agents": sum(1 for agent_id in ids if stats.get(agent_id, {}).get("runs", 0) > 0),
        "healthy_count": health.count("healthy"),
        "total_agents": len(ids),
        "agents_by_health": {state: health.count(state) for state in HEALTH_STATES},
    }


class _OrganizationCollector:
    """Metric families of one organization, computed from its records when collected."""

    def __init__(self, organization_id: str, now: dt.datetime):
        self.organization_id = organization_id
        self.now = now

    def collect(self):
        org = self.organization_id
        counts = run_status_counts(organization_id=org, statuses=[Run.Status.RUNNING, Run.Status.QUEUED])
        yield _gauge("studio_runtime_active_runs", "Runs executing now.", value=counts[Run.Status.RUNNING])
        yield _gauge("studio_runtime_pending_tasks", "Runs queued now.", value=counts[Run.Status.QUEUED])

        agents = list(runtime_agent_list(organization_id=org))
        rows = runtime_agent_rows(organization_id=org, agents=agents, now=self.now)
        by_health = GaugeMetricFamily("studio_runtime_agents", "Agents by health status.", labels=["health"])
        for state in HEALTH_STATES:
            by_health.add_metric([state], sum(1 for row in rows if row["status"] == state))
        yield by_health

        breaker = GaugeMetricFamily(
            "studio_runtime_agent_circuit_breaker",
            "1 for the agent's breaker state.",
            labels=["agent_id", "state"],
        )
        success = GaugeMetricFamily(
            "studio_runtime_agent_success_rate_24h",
            "Completed / finished executions, last 24h.",
            labels=["agent_id"],
        )
        latency = GaugeMetricFamily(
            "studio_runtime_agent_p95_latency_ms_24h", "p95 execution latency, last 24h.", labels=["agent_id"]
        )
        runs = GaugeMetricFamily(
            "studio_runtime_agent_runs_24h", "Runs it took part in, last 24h.", labels=["agent_id"]
        )
        used = GaugeMetricFamily(
            "studio_runtime_agent_budget_used_usd", "Spend this month.", labels=["agent_id"]
        )
        limit = GaugeMetricFamily(
            "studio_runtime_agent_budget_limit_usd", "Monthly budget.", labels=["agent_id"]
        )
        for row in rows:
            for state in BREAKER_STATES:
                breaker.add_metric([row["id"], state], 1 if row["circuit_breaker_state"] == state else 0)
            runs.add_metric([row["id"]], row["runs_24h"])
            used.add_metric([row["id"]], float(row["budget_used"]))
            if row["success_rate_24h"] is not None:
                success.add_metric([row["id"]], row["success_rate_24h"])
            if row["p95_latency_ms_24h"] is not None:
                latency.add_metric([row["id"]], row["p95_latency_ms_24h"])
            if row["budget_limit"] is not None:
                limit.add_metric([row["id"]], float(row["budget_limit"]))
        yield from (breaker, success, latency, runs, used, limit)

        totals = run_totals_by_kind_status(organization_id=org, since=self.now - HEALTH_WINDOW)
        executions = GaugeMetricFamily(
            "studio_runtime_runs_24h",
            "Runs created in the last 24h by kind and status.",
            labels=["kind", "status"],
        )
        tokens = GaugeMetricFamily(
            "studio_runtime_tokens_24h", "Tokens of runs created in the last 24h.", labels=["direction"]
        )
        cost = GaugeMetricFamily("studio_runtime_cost_usd_24h", "Cost of runs created in the last 24h.")
        for row in totals:
            executions.add_metric([row["kind"], row["status"]], row["n"])
        tokens.add_metric(["input"], sum(row["input"] for row in totals))
        tokens.add_metric(["output"], sum(row["output"] for row in totals))
        cost.add_metric([], float(sum((row["cost"] for row in totals), Decimal(0))))
        yield from (executions, tokens, cost)


def _gauge(name: str, documentation: str, *, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def runtime_metrics(*, organization_id: str, now: dt.datetime | None = None) -> bytes:
    """The organization's runtime numbers in the Prometheus text format (six queries)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OrganizationCollector(organization_id, now or timezone.now()))
    return generate_latest(registry)
