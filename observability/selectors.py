"""Reads of the execution ledger: traces, metric time series, usage, and per-agent run statistics.

Everything is aggregated by the database; Python only merges and shapes aggregated rows (at most
agents x days, buckets), except percentiles on SQLite, which has no percentile function and is
computed over a capped sample of the window's latencies. On PostgreSQL the aggregates over runs are
index-only scans of `run_org_created_usage_idx` (migration 0003: organization, created_at, with the
measured columns included), which is why they count `*` rather than ids."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import connections
from django.db.models import (
    Aggregate,
    Count,
    DateTimeField,
    DecimalField,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Trunc, TruncDate
from django.utils import timezone

from observability.models import Run, Span, UsageDailyRollup

PERIODS = ("day", "week", "month", "year")
METRICS = ("executions", "errors", "cost_usd", "tokens", "latency_p50_ms", "latency_p95_ms")
# period -> (length, Trunc kind, bucket width)
METRIC_PERIODS: dict[str, tuple[dt.timedelta, str, dt.timedelta]] = {
    "1h": (dt.timedelta(hours=1), "minute", dt.timedelta(minutes=1)),
    "24h": (dt.timedelta(hours=24), "hour", dt.timedelta(hours=1)),
    "7d": (dt.timedelta(days=7), "hour", dt.timedelta(hours=1)),
    "30d": (dt.timedelta(days=30), "day", dt.timedelta(days=1)),
}
PERCENTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95}
# SQLite computes percentiles in Python over at most this many of the window's newest runs.
PERCENTILE_SAMPLE_CAP = 100_000
# The output type of money sums and subqueries: the precision of the cost columns.
MONEY = DecimalField(max_digits=20, decimal_places=10)


# Periods --------------------------------------------------------------------------------------------


def period_window(period: str, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The calendar day, ISO week, month or year (UTC) containing `now`, as [start, end)."""
    today = (now or timezone.now()).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return today, today + dt.timedelta(days=1)
    if period == "week":
        start = today - dt.timedelta(days=today.weekday())
        return start, start + dt.timedelta(days=7)
    if period == "month":
        start = today.replace(day=1)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    if period == "year":
        start = today.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1)
    raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")


# Percentiles ----------------------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY expr)`: the interpolated percentile."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float, **extra):
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The same interpolated percentile as `percentile_cont`, over values in Python."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentiles_in_sql(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def grouped_percentile(
    queryset: QuerySet, *, group_by: str, field: str, fraction: float, newest_first: str = "-created_at"
) -> dict[Any, float | None]:
    """{group: percentile of `field`} over the rows of `queryset` (nulls ignored), in one query:
    `percentile_cont` on PostgreSQL, else over a capped sample (the newest rows by `newest_first`)
    in Python."""
    rows = queryset.filter(**{f"{field}__isnull": False}).order_by()
    if percentiles_in_sql(queryset):
        grouped = rows.values(group_by).annotate(p=PercentileCont(field, fraction=fraction))
        return {row[group_by]: row["p"] for row in grouped}
    values: dict[Any, list[float]] = defaultdict(list)
    sample = rows.order_by(newest_first).values_list(group_by, field)[:PERCENTILE_SAMPLE_CAP]
    for group, value in sample:
        values[group].append(value)
    return {group: percentile(found, fraction) for group, found in values.items()}


# Time buckets ---------------------------------------------------------------------------------------

STRIDES = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
BUCKET_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class DateBin(Func):
    """PostgreSQL's `date_bin(stride, source, origin)`: fixed-width buckets from a UTC midnight, the
    same buckets as a UTC `date_trunc` but plain arithmetic (no time zone rules per row)."""

    function = "DATE_BIN"
    output_field = DateTimeField()

    def __init__(self, stride: dt.timedelta, expression, **extra):
        super().__init__(Value(stride), expression, Value(BUCKET_ORIGIN), **extra)


def time_bucket(queryset: QuerySet, field: str, kind: str, *, as_date: bool = False):
    """The UTC minute, hour or day of `field`: `date_bin` on PostgreSQL (Django 5.2 requires 14+,
    which has it), Trunc elsewhere. Values come back as datetimes or, with `as_date` on other
    databases, dates; `_as_utc` / `_as_date` read either."""
    if connections[queryset.db].vendor == "postgresql":
        return DateBin(STRIDES[kind], field)
    if as_date:
        return TruncDate(field, tzinfo=dt.UTC)
    return Trunc(field, kind, tzinfo=dt.UTC)


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return _as_utc(value).date()
    if isinstance(value, str):  # SQLite may hand a date back as text
        return dt.date.fromisoformat(value[:10])
    return value


# Traces ---------------------------------------------------------------------------------------------


def trace_list(*, organization_id: str) -> QuerySet[Run]:
    """The organization's runs, newest first, each annotated with `span_count` (a correlated
    subquery, evaluated only for the rows of the page)."""
    spans = (
        Span.objects.filter(run_id=OuterRef("pk"))
        .order_by()
        .values("run_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        Run.objects.filter(organization_id=organization_id)
        .annotate(span_count=Coalesce(Subquery(spans, output_field=IntegerField()), 0))
        .order_by("-created_at", "-id")
    )


def trace_get(*, organization_id: str, run_id: str) -> tuple[Run, list[Span]] | None:
    """The run and the roots of its span tree (two queries), or None when it is not the
    organization's. Every span carries its children, in start order, as `tree_children`."""
    run = Run.objects.filter(organization_id=organization_id, pk=run_id).first()
    if run is None:
        return None
    return run, span_tree(Span.objects.filter(run_id=run.pk).order_by("started_at", "id"))


def span_tree(spans: Iterable[Span]) -> list[Span]:
    """Nests spans under their parents (`tree_children`), keeping the order they come in. A span
    whose parent is missing becomes a root rather than disappearing."""
    spans = list(spans)
    by_id = {span.pk: span for span in spans}
    roots = []
    for span in spans:
        span.tree_children = []
    for span in spans:
        parent = by_id.get(span.parent_id) if span.parent_id else None
        (parent.tree_children if parent is not None else roots).append(span)
    return roots


# Metrics --------------------------------------------------------------------------------------------

_METRIC_VALUES = {
    "executions": Count("*"),
    "errors": Count("status", filter=Q(status=Run.Status.FAILED)),
    "cost_usd": Coalesce(Sum("cost_usd"), Value(Decimal(0)), output_field=MONEY),
    "tokens": Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
}


def _floor(moment: dt.datetime, kind: str) -> dt.datetime:
    moment = moment.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if kind in ("hour", "day"):
        moment = moment.replace(minute=0)
    if kind == "day":
        moment = moment.replace(hour=0)
    return moment


def metric_series(*, organization_id: str, metric: str, period: str, now: dt.datetime | None = None) -> dict:
    """`metric` over the last `period` in buckets ending with the current one; buckets without runs
    are 0. Runs count by `created_at`; latencies are `execution_time_ms` of finished runs."""
    length, kind, step = METRIC_PERIODS[period]
    last = _floor(now or timezone.now(), kind)
    count = round(length / step)
    first = last - step * (count - 1)
    runs = Run.objects.filter(
        organization_id=organization_id, created_at__gte=first, created_at__lt=last + step
    )
    bucketed = runs.annotate(bucket=time_bucket(runs, "created_at", kind))
    if metric in PERCENTILES:
        found = grouped_percentile(
            bucketed, group_by="bucket", field="execution_time_ms", fraction=PERCENTILES[metric]
        )
    else:
        rows = bucketed.order_by().values("bucket").annotate(value=_METRIC_VALUES[metric])
        found = {row["bucket"]: row["value"] for row in rows}
    found = {_as_utc(bucket): value for bucket, value in found.items()}
    points = []
    for index in range(count):
        bucket = first + step * index
        value = found.get(bucket) or 0
        points.append({"timestamp": bucket, "value": _number(value, metric)})
    return {"metric": metric, "period": period, "interval": kind, "points": points}


def _as_utc(value) -> dt.datetime:
    if isinstance(value, str):  # some backends hand back text for truncated datetimes
        value = dt.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _number(value, metric: str) -> int | float:
    if metric in ("executions", "errors", "tokens"):
        return int(value)
    return round(float(value), 10 if metric == "cost_usd" else 3)


# Usage ----------------------------------------------------------------------------------------------


def _usage_groups(*, organization_id: str, start: dt.datetime, end: dt.datetime, agent_id: str | None = None):
    """(agent_id, date, executions, cost, tokens) per agent and day, of live runs and of the
    rollups of pruned ones in the window, in one UNION ALL query (a single scan of the runs,
    index-only on PostgreSQL). A pair can appear twice (once per source); callers add them up.
    COUNT(*) rather than COUNT(id): the covering index has no ids."""
    runs = Run.objects.filter(organization_id=organization_id, created_at__gte=start, created_at__lt=end)
    rollups = UsageDailyRollup.objects.filter(
        organization_id=organization_id, date__gte=start.date(), date__lt=end.date()
    )
    if agent_id is not None:
        runs, rollups = runs.filter(agent_id=agent_id), rollups.filter(agent_id=agent_id)
    live = (
        runs.annotate(day=time_bucket(runs, "created_at", "day", as_date=True))
        .order_by()
        .values("agent_id", "day")
        .annotate(
            n=Count("*"),
            cost=Sum("cost_usd", output_field=MONEY),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
        )
        .values_list("agent_id", "day", "n", "cost", "tokens")
    )
    folded = (
        rollups.annotate(day=F("date"))
        .order_by()
        .values("agent_id", "day")
        .annotate(
            n=Sum("executions"),
            cost=Sum("cost_usd", output_field=MONEY),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
        )
        .values_list("agent_id", "day", "n", "cost", "tokens")
    )
    return live.union(folded, all=True)


def _totals() -> dict:
    return {"executions": 0, "cost_usd": Decimal(0), "tokens": 0}


def _add_up(groups) -> tuple[dict[str, dict], dict[dt.date, dict]]:
    """The (agent, day) groups added up per agent and per day."""
    agents: dict[str, dict] = {}
    days: dict[dt.date, dict] = {}
    for agent_id, day, executions, cost, tokens in groups:
        day = _as_date(day)
        for entry in (agents.setdefault(agent_id, _totals()), days.setdefault(day, _totals())):
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
    _, days = _add_up(_usage_groups(organization_id=organization_id, start=start, end=end, agent_id=agent_id))
    return {"agent_id": agent_id, "name": name, **_summary(period, start, end, days)}


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
