"""Usage of an organization and of its agents over a period: executions, cost, tokens, by agent and by day
(sealed and pruned days from the daily rollup, the rest from raw runs: observability.rollup)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.apps import apps
from django.db.models import (
    CharField,
    Count,
    DateField,
    F,
    Sum,
    Value,
)

from observability.models import Run, UsageDailyRollup
from observability.rollup import unsealed_runs
from observability.sql import MONEY, as_date, period_window, time_bucket

# Usage ----------------------------------------------------------------------------------------------


def _usage_groups(
    *,
    organization_id: str,
    start: dt.datetime,
    end: dt.datetime,
    agent_id: str | None = None,
    per_agent: bool = True,
):
    """(agent_id, date, executions, cost, tokens) per agent and day of the raw runs from the
    organization's seal on (usually today only: at most agents rows), and of the daily rollups in
    the window (sealed days and pruned runs) (agent_id, None, ...) per agent and (None, date, ...)
    per day, never agents x days, in one UNION ALL query (one index-only scan of the runs on
    PostgreSQL). A key can appear more than once; callers add them up. COUNT(*) rather than
    COUNT(id): the covering index has no ids."""
    runs = unsealed_runs(organization_id).filter(created_at__gte=start, created_at__lt=end)
    rollups = UsageDailyRollup.objects.filter(
        organization_id=organization_id, date__gte=start.date(), date__lt=end.date()
    )
    if agent_id is not None:
        runs, rollups = runs.filter(agent_id=agent_id), rollups.filter(agent_id=agent_id)
    live = runs.annotate(day=time_bucket(runs, "created_at", "day", as_date=True)).order_by()
    folded = rollups.annotate(day=F("date")).order_by()
    live_sums = {
        "n": Count("*"),
        "cost": Sum("cost_usd", output_field=MONEY),
        "tokens": Sum(F("input_tokens") + F("output_tokens")),
    }
    folded_sums = {**live_sums, "n": Sum("executions")}
    parts = [_per(live, live_sums, agent=True, day=True), _per(folded, folded_sums, day=True)]
    if per_agent:
        parts.append(_per(folded, folded_sums, agent=True))
    return parts[0].union(*parts[1:], all=True)


def _per(rows, sums: dict, *, agent: bool = False, day: bool = False):
    """`rows` summed per agent, per day or both, as (agent or None, day or None, n, cost, tokens)."""
    keyed = {"agent": F("agent_id"), "on": F("day")}
    wanted = {name: keyed[name] for name, grouped in (("agent", agent), ("on", day)) if grouped}
    constant = {
        name: Value(None, output_field=field)
        for name, field in (("agent", CharField()), ("on", DateField()))
        if name not in wanted
    }
    return (
        rows.values(**wanted).annotate(**sums, **constant).values_list("agent", "on", "n", "cost", "tokens")
    )


def _totals() -> dict:
    return {"executions": 0, "cost_usd": Decimal(0), "tokens": 0}


def _add_up(groups) -> tuple[dict[str, dict], dict[dt.date, dict]]:
    """The groups of `_usage_groups` added up per agent and per day."""
    agents: dict[str, dict] = {}
    days: dict[dt.date, dict] = {}
    for agent_id, day, executions, cost, tokens in groups:
        entries = [] if agent_id is None else [agents.setdefault(agent_id, _totals())]
        if day is not None:
            entries.append(days.setdefault(as_date(day), _totals()))
        for entry in entries:
            entry["executions"] += int(executions or 0)
            entry["cost_usd"] += Decimal(cost or 0)
            entry["tokens"] += int(tokens or 0)
    return agents, days


def _summary(period: str, start: dt.datetime, end: dt.datetime, days: dict[dt.date, dict]) -> dict:
    by_day = [{"date": day, **days[day]} for day in sorted(days)]
    return {
        "period": period,
        "start": start,
        "end": end,
        "total_executions": sum(day["executions"] for day in by_day),
        "total_cost_usd": sum((day["cost_usd"] for day in by_day), Decimal(0)),
        "total_tokens": sum(day["tokens"] for day in by_day),
        "by_day": by_day,
    }


def _agent_names(organization_id: str, agent_ids: Iterable[str]) -> dict[str, str]:
    agent_model = apps.get_model("agents", "Agent")
    wanted = [agent_id for agent_id in agent_ids if agent_id]
    if not wanted:
        return {}
    return dict(
        agent_model.objects.filter(organization_id=organization_id, pk__in=wanted).values_list("pk", "name")
    )


def usage_summary(*, organization_id: str, period: str, now: dt.datetime | None = None) -> dict:
    """The organization's usage in the calendar period: totals, per agent and per day (two
    queries). Runs without an agent (orchestrations) form the `agent_id: null` entry, so the
    entries of `by_agent` add up to the totals; agents deleted since keep their id, name null."""
    start, end = period_window(period, now=now)
    agents, days = _add_up(_usage_groups(organization_id=organization_id, start=start, end=end))
    names = _agent_names(organization_id, agents)
    by_agent = [
        {"agent_id": agent_id or None, "name": names.get(agent_id), **totals}
        for agent_id, totals in agents.items()
    ]
    by_agent.sort(key=lambda row: (-row["cost_usd"], -row["executions"], row["agent_id"] or ""))
    return {**_summary(period, start, end, days), "by_agent": by_agent}


def usage_agent_lookup(*, organization_id: str, agent_id: str) -> tuple[bool, str | None]:
    """(known, name): an agent of the organization is known by its name; one deleted since is
    known (name None) while it has runs or rollups in the organization; any other id is unknown."""
    agent_model = apps.get_model("agents", "Agent")
    names = list(
        agent_model.objects.filter(organization_id=organization_id, pk=agent_id).values_list(
            "name", flat=True
        )
    )
    if names:
        return True, names[0]
    had_runs = (
        Run.objects.filter(organization_id=organization_id, agent_id=agent_id).exists()
        or UsageDailyRollup.objects.filter(organization_id=organization_id, agent_id=agent_id).exists()
    )
    return had_runs, None


def usage_for_agent(
    *, organization_id: str, agent_id: str, name: str | None, period: str, now: dt.datetime | None = None
) -> dict:
    """One agent's usage in the calendar period: totals and per day (one query)."""
    start, end = period_window(period, now=now)
    groups = _usage_groups(
        organization_id=organization_id, start=start, end=end, agent_id=agent_id, per_agent=False
    )
    _, days = _add_up(groups)
    return {"agent_id": agent_id, "name": name, **_summary(period, start, end, days)}
