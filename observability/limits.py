"""How many runs one organization may have in progress at once (`settings.MAX_ACTIVE_RUNS_PER_ORG`).

Runs in progress are counted in the ledger itself (queued or running rows), so the count heals
with the reaper when a process dies mid-run: no counter to leak. The count and the new run's row
are written in one transaction under the organization's row lock, so simultaneous starts of one
organization are admitted one after another and never exceed the cap together (SQLite's one
write lock does it there). Inline, that transaction is a ledger write (`run_admission_refusal`
under `run_admission_lock`, see `observability.supervisor.run_start`), shared with other runs'
writes: the admissions of a batch see each other's rows, and other processes wait for the lock.
Queued, it is the transaction that defers the run's job (`run_admit`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Organization
from observability.models import Run
from observability.rows import row_insert, rows_lock
from observability.writer import RowLock
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
    raises RunLimitReached otherwise (nothing is stored), in the caller's transaction if it has one.
    Its one caller is the queue's `run_enqueue`; inline runs are admitted by their first ledger
    write (`run_admission_refusal`)."""
    with transaction.atomic():
        model, pk = run_admission_lock(draft.organization_id)
        rows_lock(model, [pk])
        refusal = run_admission_refusal(draft.organization_id)
        if refusal is not None:
            raise refusal
        run = draft.run()
        row_insert(run)
        return run


def run_admission_lock(organization_id: str) -> RowLock:
    """The row a ledger write admitting a run of the organization locks first (see module doc)."""
    return (Organization, organization_id)


def run_admission_refusal(organization_id: str) -> RunLimitReached | None:
    """Within a ledger write holding `run_admission_lock(organization_id)`: the refusal of a new run
    when the organization has its cap of runs in progress (returned, not raised: it wrote nothing,
    so it need not roll back the writes it shares a transaction with), else None."""
    limit = settings.MAX_ACTIVE_RUNS_PER_ORG
    if _runs_in_progress(organization_id, up_to=limit) >= limit:
        return RunLimitReached(limit)
    return None


def _runs_in_progress(organization_id: str, *, up_to: int) -> int:
    """The organization's runs in progress, counted up to `up_to`. The transaction holds the
    organization's row lock (SQLite's write lock does it there), which serialises the admissions
    of one organization until it ends; the count's snapshot is taken once the lock is held, so it
    sees the run of whoever held it."""
    with connection.cursor() as cursor:
        cursor.execute(_count_sql(), [organization_id, *IN_PROGRESS, up_to])
        return cursor.fetchone()[0]


@functools.cache
def _count_sql() -> str:
    """The bounded count of an organization's runs in progress."""
    quote = connection.ops.quote_name
    runs = quote(Run._meta.db_table)
    organization = quote(Run._meta.get_field("organization").column)
    status = quote(Run._meta.get_field("status").column)
    statuses = ", ".join(["%s"] * len(IN_PROGRESS))
    active = f"SELECT 1 FROM {runs} WHERE {organization} = %s AND {status} IN ({statuses}) LIMIT %s"  # noqa: S608
    return f"SELECT count(*) FROM ({active}) AS in_progress"  # noqa: S608
