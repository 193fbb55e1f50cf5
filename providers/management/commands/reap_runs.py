"""Fails runs left behind by a crashed process and frees their budget reservations (server
processes do this periodically too: see `providers.reaping`)."""

from django.core.management.base import BaseCommand

from observability.supervisor import STALE_AFTER_S
from providers.aio import run_sync
from providers.reaping import runs_reap


class Command(BaseCommand):
    help = (
        f"Fail runs whose heartbeat is older than {STALE_AFTER_S:g} s and release the budget holds of "
        "their LLM calls in flight."
    )

    def handle(self, *args, **options):
        reaped = run_sync(runs_reap)
        for run, released in reaped:
            self.stdout.write(f"reaped {run.pk} (the holds of {released} LLM call(s) in flight released)")
        self.stdout.write(self.style.SUCCESS(f"{len(reaped)} stale run(s) reaped"))
