"""How many runs one organization may have in progress at once (`settings.MAX_ACTIVE_RUNS_PER_ORG`).

Runs in progress are counted in the ledger itself (queued or running rows), so the count heals
with the reaper when a process dies mid-run: no counter to leak. The check and the new run's row
are written in one transaction under the organization's row lock, so simultaneous starts of one
organization are admitted one after another and never exceed the cap together."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from accounts.models import Organization
from observability.models import Run
from studio.errors import CodedError

if TYPE_CHECKING:
    from observability.supervisor import RunDraft

IN_PROGRESS = (Run.Status.QUEUED, Run.Status.RUNNING)
RETRY_AFTER_S = 5  # runs end at no known time: a short wait, then ask again


class RunLimitReached(CodedError):
    """The organization already has its cap of runs in progress: 429 with Retry-After."""

    status = 429
    code = "too_many_active_runs"

    def __init__(self, limit: int):
        super().__init__(
            f"Your organization already has {limit} runs in progress, the most it may have at once; "
            "retry when one has finished.",
            fields={"limit": limit},
            retry_after=RETRY_AFTER_S,
        )


def run_admit(draft: RunDraft) -> Run:
    """Stores the draft as a queued run if its organization is under its cap of runs in progress;
    raises RunLimitReached otherwise (nothing is stored). `run_start` is its one caller."""
    limit = settings.MAX_ACTIVE_RUNS_PER_ORG
    with transaction.atomic():
        # Serialises the admissions of one organization (SQLite's write lock does it there).
        Organization.objects.select_for_update().filter(pk=draft.organization_id).values_list("pk").first()
        active = Run.objects.filter(organization_id=draft.organization_id, status__in=IN_PROGRESS).count()
        if active >= limit:
            raise RunLimitReached(limit)
        return Run.objects.create(**{**dataclasses.asdict(draft), "input": dict(draft.input)})
