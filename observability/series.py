"""Metric time series of an organization's runs, bucketed in SQL (`GET /api/metrics`). Daily buckets
(30d) read sealed days from the daily rollups (observability.rollup), the rest from raw runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import (
    Count,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from observability.models import Run, RunDailyRollup, UsageDailyRollup
from observability.rollup import unsealed_runs
from observability.sql import MONEY, as_date, as_utc, grouped_percentile, time_bucket

METRICS = ("executions", "errors", "cost_usd", "tokens", "latency_p50_ms", "latency_p95_ms")
# period -> (length, Trunc kind, bucket width)
METRIC_PERIODS: dict[str, tuple[dt.timedelta, str, dt.timedelta]] = {
    "1h": (dt.timedelta(hours=1), "minute", dt.timedelta(minutes=1)),
    "24h": (dt.timedelta(hours=24), "hour", dt.timedelta(hours=1)),
    "7d": (dt.timedelta(days=7), "hour", dt.timedelta(hours=1)),
    "30d": (dt.timedelta(days=30), "day", dt.timedelta(days=1)),
}
PERCENTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95}
ROLLUP_PERCENTILES = {"latency_p50_ms": "p50_ms", "latency_p95_ms": "p95_ms"}  # RunDailyRollup


# Metrics --------------------------------------------------------------------------------------------

_METRIC_VALUES = {
    "executions": Count("*"),
    "errors": Count("status", filter=Q(status=Run.Status.FAILED)),
    "cost_usd": Coalesce(Sum("cost_usd"), Value(Decimal(0)), output_field=MONEY),
    "tokens": Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
}
_ROLLUP_VALUES = {
    "executions": Sum("executions"),
    "errors": Sum("errors"),
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
    if kind == "day":
        found = _daily_values(organization_id, metric, first, last + step)
    else:
        runs = Run.objects.filter(
            organization_id=organization_id, created_at__gte=first, created_at__lt=last + step
        )
        found = _bucket_values(runs, metric, kind)
    points = []
    for index in range(count):
        bucket = first + step * index
        value = found.get(bucket) or 0
        points.append({"timestamp": bucket, "value": _number(value, metric)})
    return {"metric": metric, "period": period, "interval": kind, "points": points}


def _bucket_values(runs: QuerySet[Run], metric: str, kind: str) -> dict[dt.datetime, Any]:
    """{bucket start: value} of the runs, bucketed in SQL (one query)."""
    bucketed = runs.annotate(bucket=time_bucket(runs, "created_at", kind))
    if metric in PERCENTILES:
        found = grouped_percentile(
            bucketed, group_by="bucket", field="execution_time_ms", fraction=PERCENTILES[metric]
        )
    else:
        rows = bucketed.order_by().values("bucket").annotate(value=_METRIC_VALUES[metric])
        found = {row["bucket"]: row["value"] for row in rows}
    return {as_utc(bucket): value for bucket, value in found.items()}


def _daily_values(organization_id: str, metric: str, start: dt.datetime, end: dt.datetime) -> dict:
    """{day start: value} over whole UTC days: the rollups of sealed (and pruned) days plus the raw
    runs from the seal on. Sums are one UNION ALL query; a percentile is the day's stored one for a
    sealed day and `_bucket_values` for the rest (two queries)."""
    runs = unsealed_runs(organization_id).filter(created_at__gte=start, created_at__lt=end)
    days = {"organization_id": organization_id, "date__gte": start.date(), "date__lt": end.date()}
    if metric in PERCENTILES:
        column = ROLLUP_PERCENTILES[metric]
        stored = RunDailyRollup.objects.filter(**days).values_list("date", column)
        found = {_midnight(day): value for day, value in stored if value is not None}
        return found | _bucket_values(runs, metric, "day")
    raw = (
        runs.annotate(day=time_bucket(runs, "created_at", "day", as_date=True))
        .order_by()
        .values("day")
        .annotate(value=_METRIC_VALUES[metric])
        .values_list("day", "value")
    )
    folded = (
        UsageDailyRollup.objects.filter(**days)
        .annotate(day=F("date"))
        .order_by()
        .values("day")
        .annotate(value=_ROLLUP_VALUES[metric])
        .values_list("day", "value")
    )
    found: dict[dt.datetime, Any] = {}
    for day, value in raw.union(folded, all=True):
        bucket = _midnight(as_date(day))
        found[bucket] = found.get(bucket, 0) + (value or 0)
    return found


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _number(value, metric: str) -> int | float:
    if metric in ("executions", "errors", "tokens"):
        return int(value)
    return round(float(value), 10 if metric == "cost_usd" else 3)
