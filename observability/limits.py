"""How many runs one organization may have in progress at once (`settings.MAX_ACTIVE_RUNS_PER_ORG`).

Runs in progress are counted in the ledger itself (queued or running rows), so the count heals
with the reaper when a process dies mid-run: no counter to leak. The check and the new run's row
are written in one transaction under the organization's row lock, so simultaneous starts of one
organization are admitted one after another and never exceed the cap together."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Organization
from observability.models import Run
from observability.rows import row_insert
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
        if _runs_in_progress(draft.organization_id, up_to=limit) >= limit:
            raise RunLimitReached(limit)
        run = Run(**{**dataclasses.asdict(draft), "input": dict(draft.input)})
        row_insert(run)
        return run


def _runs_in_progress(organization_id: str, *, up_to: int) -> int:
    """The organization's runs in progress (counted up to `up_to`), under its row lock, which
    serialises the admissions of one organization until the transaction ends (SQLite's write lock
    does it there). On PostgreSQL the lock and the count go in one round trip, as two statements:
    the count takes its snapshot once the lock is held, so it sees the run of whoever held it."""
    lock, count = _statements()
    count_params = [organization_id, *IN_PROGRESS, up_to]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(count, count_params)
        elif connection.settings_dict["OPTIONS"].get("server_side_binding"):  # one statement a call
            cursor.execute(lock, [organization_id])
            cursor.execute(count, count_params)
        else:  # client-side binding (Django's default) sends both statements at once
            cursor.execute(f"{lock}; {count}", [organization_id, *count_params])
            cursor.nextset()
        return cursor.fetchone()[0]


@functools.cache
def _statements() -> tuple[str, str]:
    """The lock of an organization's row, and the bounded count of its runs in progress."""
    quote = connection.ops.quote_name
    organizations, runs = quote(Organization._meta.db_table), quote(Run._meta.db_table)
    organization = quote(Run._meta.get_field("organization").column)
    status = quote(Run._meta.get_field("status").column)
    statuses = ", ".join(["%s"] * len(IN_PROGRESS))
    lock = f"SELECT 1 FROM {organizations} WHERE {quote('id')} = %s FOR UPDATE"  # noqa: S608
    active = f"SELECT 1 FROM {runs} WHERE {organization} = %s AND {status} IN ({statuses}) LIMIT %s"  # noqa: S608
    return lock, f"SELECT count(*) FROM ({active}) AS in_progress"  # noqa: S608
