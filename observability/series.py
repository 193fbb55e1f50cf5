"""Metric time series of an organization's runs, bucketed in SQL (`GET /api/metrics`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import (
    Count,
    F,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from observability.models import Run
from observability.sql import MONEY, as_utc, grouped_percentile, time_bucket

METRICS = ("executions", "errors", "cost_usd", "tokens", "latency_p50_ms", "latency_p95_ms")
# period -> (length, Trunc kind, bucket width)
METRIC_PERIODS: dict[str, tuple[dt.timedelta, str, dt.timedelta]] = {
    "1h": (dt.timedelta(hours=1), "minute", dt.timedelta(minutes=1)),
    "24h": (dt.timedelta(hours=24), "hour", dt.timedelta(hours=1)),
    "7d": (dt.timedelta(days=7), "hour", dt.timedelta(hours=1)),
    "30d": (dt.timedelta(days=30), "day", dt.timedelta(days=1)),
}
PERCENTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95}


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
    found = {as_utc(bucket): value for bucket, value in found.items()}
    points = []
    for index in range(count):
        bucket = first + step * index
        value = found.get(bucket) or 0
        points.append({"timestamp": bucket, "value": _number(value, metric)})
    return {"metric": metric, "period": period, "interval": kind, "points": points}


def _number(value, metric: str) -> int | float:
    if metric in ("executions", "errors", "tokens"):
        return int(value)
    return round(float(value), 10 if metric == "cost_usd" else 3)
