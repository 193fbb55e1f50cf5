"""`manage.py prune_runs --older-than 90d [--batch-size 1000] [--dry-run]`

Deletes finished runs created before the cut-off, with their spans and events, one organization
and one small batch at a time: each batch is its own short transaction that first adds the usage
of the runs not yet sealed (`rollup_usage`) to `UsageDailyRollup` and then deletes them, so usage
totals never change and a rerun (or a run interrupted half-way) never counts a run twice. Queued
and running runs are left to the reaper. The latency percentiles of the metric series (at most 30
days) are kept for sealed days only: keep --older-than above 30d, or seal first."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Organization
from observability.models import Run, RunDailyRollup, RunEvent, Span, UsageSeal
from observability.rollup import rollup_add

_AGE = re.compile(r"^(\d+)([hdw]?)$")
_UNITS = {
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
    "": dt.timedelta(days=1),
}
MAX_BATCH_SIZE = 5000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_age(text: str) -> dt.timedelta:
    """`90d`, `12h`, `2w` or a number of days."""
    match = _AGE.match(text.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise CommandError(f"--older-than must look like 90d, 12h or 2w (got {text!r}).")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _prunable(organization_id: str, cutoff: dt.datetime):
    return Run.objects.filter(organization_id=organization_id, created_at__lt=cutoff, status__in=Run.FINISHED)


def runs_prune_batch(*, organization_id: str, cutoff: dt.datetime, batch_size: int) -> int:
    """Folds up to `batch_size` of the organization's oldest prunable runs into the rollup and
    deletes them with their spans and events, in one short transaction; returns how many."""
    with transaction.atomic():
        # Locks the seal against a concurrent `usage_seal` folding the same runs.
        seal = UsageSeal.objects.select_for_update().filter(organization_id=organization_id).first()
        sealed_until = seal.sealed_until if seal is not None else None
        candidates = _prunable(organization_id, cutoff).order_by("created_at")
        if connections[Run.objects.db].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)  # a concurrent pruner skips them
        batch = list(candidates.values_list("id", "created_at")[:batch_size])
        if not batch:
            return 0
        run_ids = [run_id for run_id, _ in batch]
        # Runs before the seal are in the rollup already: they only leave their day's run count.
        rollup_add(Run.objects.filter(pk__in=run_ids, created_at__gte=sealed_until or _EPOCH))
        sealed_days = Counter(
            created_at.astimezone(dt.UTC).date()
            for _, created_at in batch
            if sealed_until is not None and created_at < sealed_until
        )
        for day, gone in sealed_days.items():
            RunDailyRollup.objects.filter(organization_id=organization_id, date=day).update(
                runs=F("runs") - gone
            )
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
