"""SQL building blocks of the ledger's reads: periods, percentiles, time buckets, the money type.

Everything is aggregated by the database; Python only merges and shapes aggregated rows (at most
agents x days, buckets), except percentiles on SQLite, which has no percentile function and is
computed over a capped sample of the window's latencies. On PostgreSQL the aggregates over runs are
index-only scans of `run_org_created_usage_idx` (migration 0003: organization, created_at, with the
measured columns included), which is why they count `*` rather than ids."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    DateTimeField,
    DecimalField,
    FloatField,
    Func,
    QuerySet,
    Value,
)
from django.db.models.functions import Trunc, TruncDate
from django.utils import timezone

PERIODS = ("day", "week", "month", "year")
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
    databases, dates; `as_utc` / `as_date` read either."""
    if connections[queryset.db].vendor == "postgresql":
        return DateBin(STRIDES[kind], field)
    if as_date:
        return TruncDate(field, tzinfo=dt.UTC)
    return Trunc(field, kind, tzinfo=dt.UTC)


def as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return as_utc(value).date()
    if isinstance(value, str):  # SQLite may hand a date back as text
        return dt.date.fromisoformat(value[:10])
    return value


def as_utc(value) -> dt.datetime:
    if isinstance(value, str):  # some backends hand back text for truncated datetimes
        value = dt.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
