"""Everything `make run` does before serving, in one process: migrate, reap runs left by a
crashed process, and load the official templates (each step idempotent)."""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Prepare the instance to serve: migrate, reap stale runs, load official templates."

    steps = (("migrate", {"interactive": False}), ("reap_runs", {}), ("load_templates", {}))

    def handle(self, *args, **options):
        for name, kwargs in self.steps:
            call_command(name, stdout=self.stdout, stderr=self.stderr, **kwargs)
