"""Fails runs left behind by a crashed process and frees their budget reservations."""

from django.core.management.base import BaseCommand

from observability.services import STALE_AFTER_S, run_abandon, runs_stale
from providers.aio import run_sync
from providers.budgets import budget_release_run


class Command(BaseCommand):
    help = (
        f"Fail runs whose heartbeat is older than {STALE_AFTER_S:g} s and release the budget holds of "
        "their LLM calls in flight."
    )

    def handle(self, *args, **options):
        reaped = 0
        for run in runs_stale().iterator():
            released = budget_release_run(run.pk)
            run_sync(run_abandon, run)
            reaped += 1
            self.stdout.write(f"reaped {run.pk} (the holds of {released} LLM call(s) in flight released)")
        self.stdout.write(self.style.SUCCESS(f"{reaped} stale run(s) reaped"))
