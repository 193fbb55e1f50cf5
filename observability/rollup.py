"""The daily rollups of the ledger: usage per (organization, agent, day, kind) and latency
percentiles per (organization, day), so that reads over whole days add up a few rows per day
instead of every run.

A day's runs reach the rollups in one of two ways:

- `usage_seal` folds every run of the organization's closed days, one day per transaction, and
  advances the organization's seal (`UsageSeal.sealed_until`) past them. The runs stay in the
  ledger (traces, runtime), but usage reads count days before the seal from the rollups only and
  read raw runs from the seal on. A day is sealed once it ended at least `SEAL_GRACE` ago and no
  run of it (or of an earlier day) is unfinished (queued, running, waiting): a finished run's
  totals never change, and runs are created with the server's clock at insert, so nothing sealed
  changes later.
- `prune_runs` folds the usage of unsealed runs it deletes (a sealed run is already counted) and
  takes the sealed ones it deletes off their day's `RunDailyRollup.runs`.

Either way each run is counted once: reads add every rollup row of the window to the raw runs
created from the seal on."""

from __future__ import annotations

import asyncio
import datetime as dt

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.db.models import BigIntegerField, Count, DateTimeField, Min, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Least, TruncDate
from django.utils import timezone

from accounts.models import Organization
from observability.loops import loop_local
from observability.models import Run, RunDailyRollup, UsageDailyRollup, UsageSeal
from observability.queue import queue_enabled
from observability.sql import PercentileCont, percentile, percentiles_in_sql
from studio.background import every

# How long after midnight a day may still receive runs (a transaction open across midnight, clocks
# of several servers a little apart). The day is sealed only after that.
SEAL_GRACE = dt.timedelta(minutes=15)
# The latency percentiles kept per day: those of the metric series (observability.series).
LATENCY_FRACTIONS = {"p50_ms": 0.5, "p95_ms": 0.95}
UPSERT_ROWS = 1000  # rollup rows per INSERT: 9,000 parameters, well under SQLite's limit
_ADDED = ("executions", "errors", "input_tokens", "output_tokens", "cost_usd")
# Every status a run can still leave (queued, running, and any added since, such as waiting for a
# person): as a list rather than NOT IN, so that the (organization, status) index serves it.
_UNFINISHED = tuple(status for status in Run.Status.values if status not in Run.FINISHED)
DAY = dt.timedelta(days=1)
_BEFORE_ANY_RUN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def unsealed_runs(organization_id: str) -> QuerySet[Run]:
    """The organization's runs that are not in the rollups yet: created from its seal on. The seal
    is a scalar subquery of the same statement (on PostgreSQL an InitPlan that bounds the index
    range), so reading it costs no query of its own."""
    return Run.objects.filter(
        organization_id=organization_id, created_at__gte=_seal_expression(organization_id)
    )


def live_run_count(
    organization_id: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> int:
    """How many runs of the organization the ledger holds created in [since, until] (either open),
    exactly, in one statement: whole sealed days in the range from their `RunDailyRollup` counts,
    raw runs for the rest (the partial first and last days, and the days from the seal on)."""
    first_whole = (
        None if since is None else day_start(since) + (DAY if since != day_start(since) else dt.timedelta())
    )
    end = None if until is None else until + dt.timedelta(microseconds=1)  # exclusive
    end_whole = None if end is None else day_start(end)
    runs = Run.objects.filter(organization_id=organization_id)
    if end is not None:
        runs = runs.filter(created_at__lt=end)
    days = RunDailyRollup.objects.filter(organization_id=organization_id)
    # Raw runs after the whole sealed days: from the seal (or the range's last whole day) on.
    tail_from = _seal_expression(organization_id)
    if end_whole is not None:
        tail_from = Least(tail_from, Value(end_whole))
        days = days.filter(date__lt=end_whole.date())
    extra = []
    if first_whole is not None:
        tail_from = Greatest(tail_from, Value(first_whole))
        days = days.filter(date__gte=first_whole.date())
        head = runs.filter(created_at__gte=since, created_at__lt=first_whole)
        extra.append(_count_subquery(head.order_by().values("organization_id").annotate(n=Count("*"))))
    whole = days.order_by().values("organization_id").annotate(n=Sum("runs"))
    extra.append(_count_subquery(whole))
    tail = runs.filter(created_at__gte=tail_from)
    return tail.order_by().aggregate(n=sum(extra, Count("*")))["n"]


def _count_subquery(grouped: QuerySet):
    return Coalesce(Subquery(grouped.values("n"), output_field=BigIntegerField()), Value(0))


def _seal_expression(organization_id: str):
    seal = UsageSeal.objects.filter(organization_id=organization_id).values("sealed_until")
    return Coalesce(Subquery(seal, output_field=DateTimeField()), Value(_BEFORE_ANY_RUN))


def day_start(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# Folding runs into the usage rollup ---------------------------------------------------------------


def rollup_add(runs: QuerySet[Run]) -> int:
    """Adds the usage of these runs to the daily rollup (one aggregate query, then upserts that
    increment existing rows atomically); returns how many runs it added."""
    groups = list(
        runs.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .order_by()
        .values("organization_id", "agent_id", "day", "kind")
        .annotate(
            executions=Count("*"),
            errors=Count("status", filter=Q(status=Run.Status.FAILED)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_usd=Sum("cost_usd"),
        )
    )
    if groups:
        _upsert_increments(groups)
    return sum(group["executions"] for group in groups)


def _upsert_increments(groups: list[dict]) -> None:
    connection = connections[UsageDailyRollup.objects.db]
    ops, quote = connection.ops, connection.ops.quote_name
    table = quote(UsageDailyRollup._meta.db_table)
    keys = ("organization_id", "agent_id", "date", "kind")
    columns = ", ".join(quote(column) for column in (*keys, *_ADDED))
    row = "(" + ", ".join(["%s"] * (len(keys) + len(_ADDED))) + ")"
    increments = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in _ADDED)
    conflict = ", ".join(quote(key) for key in keys)
    with connection.cursor() as cursor:
        for first in range(0, len(groups), UPSERT_ROWS):
            chunk = groups[first : first + UPSERT_ROWS]
            params: list = []
            for group in chunk:
                params += [
                    group["organization_id"],
                    group["agent_id"],
                    ops.adapt_datefield_value(group["day"]),
                    group["kind"],
                    group["executions"],
                    group["errors"],
                    group["input_tokens"] or 0,
                    group["output_tokens"] or 0,
                    ops.adapt_decimalfield_value(group["cost_usd"] or 0, 20, 10),
                ]
            # Identifiers are this model's own table and columns; every value is a parameter.
            values = ", ".join([row] * len(chunk))
            sql = f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT ({conflict}) DO UPDATE SET {increments}"  # noqa: S608, E501
            cursor.execute(sql, params)


# Sealing closed days ------------------------------------------------------------------------------


def seal_target(organization_id: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """The furthest the organization's seal may go now: the start of the day that ended less than
    `SEAL_GRACE` ago, or of the day of its oldest unfinished run if that is earlier."""
    target = day_start((now or timezone.now()) - SEAL_GRACE)
    oldest = (
        Run.objects.filter(organization_id=organization_id, status__in=_UNFINISHED)
        .order_by()
        .aggregate(first=Min("created_at"))["first"]
    )
    return target if oldest is None else min(target, day_start(oldest))


def _first_run_at(organization_id: str, since: dt.datetime | None, until: dt.datetime) -> dt.datetime | None:
    runs = Run.objects.filter(organization_id=organization_id, created_at__lt=until)
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    return runs.order_by().aggregate(first=Min("created_at"))["first"]


def usage_seal(organization_id: str, *, now: dt.datetime | None = None, max_days: int | None = None) -> int:
    """Folds the organization's closed days into the rollups, oldest first, one day per short
    transaction (an interrupted or concurrent seal never folds a day twice: each transaction
    locks the seal row and starts from what it says); returns how many days held runs."""
    target = seal_target(organization_id, now=now)
    UsageSeal.objects.get_or_create(organization_id=organization_id, defaults={"sealed_until": None})
    sealed = 0
    while max_days is None or sealed < max_days:
        if not _seal_next_day(organization_id, target):
            return sealed
        sealed += 1
    return sealed


def usage_seal_all(*, max_days: int | None = None) -> dict[str, int]:
    """`usage_seal` for every organization: the days folded, for those that had any."""
    organizations = Organization.objects.order_by("pk").values_list("pk", flat=True)
    folded = {pk: usage_seal(pk, max_days=max_days) for pk in organizations}
    return {pk: days for pk, days in folded.items() if days}


async def usage_rollup() -> int:
    """The periodic rollup (every `STUDIO_ROLLUP_EVERY_S` in each server process inline, a periodic
    task of the worker pool when queued): how many days it folded."""
    return sum((await sync_to_async(usage_seal_all)()).values())


def _start_rolling_up() -> asyncio.Task | None:
    every_s = settings.ROLLUP_EVERY_S
    if every_s <= 0 or queue_enabled():  # queued: the pool's periodic task (observability.tasks)
        return None
    return every(every_s, usage_rollup, name="usage rollup")


usage_rollup_start = loop_local(_start_rolling_up)
"""Starts the running loop's periodic rollup, once (concurrent rollups of several processes are
safe: each day is folded under its organization's seal lock)."""


def _seal_next_day(organization_id: str, target: dt.datetime) -> bool:
    """Seals the next day with runs before `target` (days without runs are skipped over); False
    when there is none left, the seal then standing at `target`."""
    with transaction.atomic():
        seal = UsageSeal.objects.select_for_update().get(organization_id=organization_id)
        if seal.sealed_until is not None and seal.sealed_until >= target:
            return False
        first = _first_run_at(organization_id, seal.sealed_until, target)
        if first is None:
            seal.sealed_until = target
            seal.save(update_fields=["sealed_until"])
            return False
        start = day_start(first)
        runs = Run.objects.filter(
            organization_id=organization_id, created_at__gte=start, created_at__lt=start + DAY
        )
        folded = rollup_add(runs)
        _day_store(organization_id, start.date(), runs, folded)
        seal.sealed_until = start + DAY
        seal.save(update_fields=["sealed_until"])
        return True


def _day_store(organization_id: str, date: dt.date, runs: QuerySet[Run], count: int) -> None:
    """The day's run count and latency percentiles over its finished runs (the same
    `percentile_cont` as the raw series on PostgreSQL; exact over all of the day's values
    elsewhere)."""
    timed = runs.filter(execution_time_ms__isnull=False).order_by()
    if percentiles_in_sql(timed):
        fractions = LATENCY_FRACTIONS.items()
        found = timed.aggregate(
            samples=Count("*"),
            **{name: PercentileCont("execution_time_ms", fraction=f) for name, f in fractions},
        )
    else:
        values = list(timed.values_list("execution_time_ms", flat=True))
        found = {"samples": len(values)}
        found |= {name: percentile(values, fraction) for name, fraction in LATENCY_FRACTIONS.items()}
    RunDailyRollup.objects.update_or_create(
        organization_id=organization_id, date=date, defaults={**found, "runs": count}
    )
