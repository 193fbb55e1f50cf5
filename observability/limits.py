"""How many runs one organization may have in progress at once (`settings.MAX_ACTIVE_RUNS_PER_ORG`).

Runs in progress are counted in the ledger itself (queued or running rows), so the count heals
with the reaper when a process dies mid-run: no counter to leak. The check and the new run's row
are written in one transaction under the organization's row lock, so simultaneous starts of one
organization are admitted one after another and never exceed the cap together."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import Organization
from observability.models import Run
from observability.services import run_store

IN_PROGRESS = (Run.Status.QUEUED, Run.Status.RUNNING)
RETRY_AFTER_S = 5  # runs end at no known time: a short wait, then ask again


class RunLimitReached(Exception):
    """The organization already has its cap of runs in progress: 429 with Retry-After."""

    status = 429
    code = "too_many_active_runs"

    def __init__(self, limit: int):
        self.message = (
            f"Your organization already has {limit} runs in progress, the most it may have at once; "
            "retry when one has finished."
        )
        super().__init__(self.message)
        self.fields = {"limit": limit}
        self.retry_after = RETRY_AFTER_S


def run_admit(run: Run) -> Run:
    """Stores a run from `run_new` if its organization is under its cap of runs in progress;
    raises RunLimitReached otherwise (nothing is stored)."""
    limit = settings.MAX_ACTIVE_RUNS_PER_ORG
    with transaction.atomic():
        # Serialises the admissions of one organization (SQLite's write lock does it there).
        Organization.objects.select_for_update().filter(pk=run.organization_id).values_list("pk").first()
        active = Run.objects.filter(organization_id=run.organization_id, status__in=IN_PROGRESS).count()
        if active >= limit:
            raise RunLimitReached(limit)
        return run_store(run)
