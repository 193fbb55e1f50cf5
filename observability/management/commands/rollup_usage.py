"""`manage.py rollup_usage [--max-days N]`

Folds every organization's closed days into the daily rollups (observability.rollup): usage per
agent, day and kind, latency percentiles per day. Usage and the daily metric series then read a few
rows per sealed day instead of its runs. Idempotent and safe to run concurrently (each day is one
short transaction that locks the organization's seal). The server processes (inline) or the worker
pool (queued) already run it every `STUDIO_ROLLUP_EVERY_S`; by hand it is useful after an import.
The first run over an existing ledger folds all of its history, one day at a time."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from observability.rollup import usage_seal_all


class Command(BaseCommand):
    help = "Folds every organization's closed days into the daily usage and latency rollups."

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-days", type=int, default=None, help="days with runs to fold per organization (default all)"
        )

    def handle(self, *args, max_days, **options):
        if max_days is not None and max_days < 1:
            raise CommandError("--max-days must be at least 1.")
        started = time.perf_counter()
        folded = usage_seal_all(max_days=max_days)
        for organization_id, sealed in folded.items():
            self.stdout.write(f"  {organization_id}: {sealed} day(s) folded")
        days = sum(folded.values())
        elapsed = time.perf_counter() - started
        done = f"Folded {days} day(s) into the daily rollups in {elapsed:.1f} s."
        self.stdout.write(self.style.SUCCESS(done))
