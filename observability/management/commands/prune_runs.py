"""`manage.py prune_runs --older-than 90d [--batch-size 1000] [--dry-run]`

Deletes finished runs created before the cut-off, with their spans and events, one organization
and one small batch at a time: each batch is its own short transaction that first adds the runs'
usage to `UsageDailyRollup` and then deletes them, so usage totals never change and a rerun (or
a run interrupted half-way) never counts a run twice. Queued and running runs are left to the
reaper. Metrics time series (at most 30 days) read live runs only: keep --older-than above 30d."""

from __future__ import annotations

import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Organization
from observability.models import Run, RunEvent, Span, UsageDailyRollup

_AGE = re.compile(r"^(\d+)([hdw]?)$")
_UNITS = {
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
    "": dt.timedelta(days=1),
}
MAX_BATCH_SIZE = 5000
UPSERT_ROWS = 1000  # rollup rows per INSERT: 9,000 parameters, well under SQLite's limit
_ADDED = ("executions", "errors", "input_tokens", "output_tokens", "cost_usd")


def parse_age(text: str) -> dt.timedelta:
    """`90d`, `12h`, `2w` or a number of days."""
    match = _AGE.match(text.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise CommandError(f"--older-than must look like 90d, 12h or 2w (got {text!r}).")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _prunable(organization_id: str, cutoff: dt.datetime):
    return Run.objects.filter(organization_id=organization_id, created_at__lt=cutoff, status__in=Run.FINISHED)


def rollup_add(run_ids: list[str]) -> int:
    """Adds the usage of these runs to the daily rollup (one aggregate query, then upserts that
    increment existing rows atomically); returns how many rollup rows it touched."""
    groups = list(
        Run.objects.filter(pk__in=run_ids)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .order_by()
        .values("organization_id", "agent_id", "day", "kind")
        .annotate(
            executions=Count("id"),
            errors=Count("id", filter=Q(status=Run.Status.FAILED)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_usd=Sum("cost_usd"),
        )
    )
    if not groups:
        return 0
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
    return len(groups)


def runs_prune_batch(*, organization_id: str, cutoff: dt.datetime, batch_size: int) -> int:
    """Folds up to `batch_size` of the organization's oldest prunable runs into the rollup and
    deletes them with their spans and events, in one short transaction; returns how many."""
    with transaction.atomic():
        candidates = _prunable(organization_id, cutoff).order_by("created_at")
        if connections[Run.objects.db].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)  # a concurrent pruner skips them
        run_ids = list(candidates.values_list("id", flat=True)[:batch_size])
        if not run_ids:
            return 0
        rollup_add(run_ids)
        RunEvent.objects.filter(run_id__in=run_ids).delete()
        # Every span of these runs goes in one statement, so the parent->children cascade that
        # Django would otherwise walk row by row has nothing left to delete.
        spans = Span.objects.filter(run_id__in=run_ids)
        spans._raw_delete(spans.db)
        Run.objects.filter(pk__in=run_ids).delete()
    return len(run_ids)


class Command(BaseCommand):
    help = (
        "Deletes finished runs (with spans and events) older than --older-than in small batches, "
        "after folding their usage into the daily rollup so that usage totals stay the same."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", default="90d", help="age such as 90d, 12h or 2w (default 90d)")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="runs per transaction (default 1000)"
        )
        parser.add_argument("--dry-run", action="store_true", help="only count what would be pruned")

    def handle(self, *args, older_than, batch_size, dry_run, **options):
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}.")
        cutoff = timezone.now() - parse_age(older_than)
        organization_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
        total = Run.objects.filter(created_at__lt=cutoff, status__in=Run.FINISHED).count()
        self.stdout.write(f"{total} finished runs created before {cutoff.isoformat()} to prune.")
        if dry_run or total == 0:
            return
        pruned = 0
        for organization_id in organization_ids:
            while count := runs_prune_batch(
                organization_id=organization_id, cutoff=cutoff, batch_size=batch_size
            ):
                pruned += count
                self.stdout.write(f"  pruned {pruned}/{total} runs ({organization_id})")
        self.stdout.write(
            self.style.SUCCESS(f"Pruned {pruned} runs; their usage is kept in the daily rollup.")
        )
