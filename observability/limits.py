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

import dataclasses
import functools
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Organization
from observability.models import Run
from observability.rows import row_insert
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
    limit = settings.MAX_ACTIVE_RUNS_PER_ORG
    with transaction.atomic():
        if _runs_in_progress(draft.organization_id, up_to=limit) >= limit:
            raise RunLimitReached(limit)
        run = Run(**{**dataclasses.asdict(draft), "input": dict(draft.input)})
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
    if _runs_in_progress(organization_id, up_to=limit, locked=True) >= limit:
        return RunLimitReached(limit)
    return None


def _runs_in_progress(organization_id: str, *, up_to: int, locked: bool = False) -> int:
    """The organization's runs in progress (counted up to `up_to`), under its row lock (taken here
    unless the transaction holds it already: `locked`), which serialises the admissions of one
    organization until the transaction ends (SQLite's write lock does it there). On PostgreSQL the
    lock and the count go in one round trip, as two statements: the count takes its snapshot once
    the lock is held, so it sees the run of whoever held it."""
    lock, count = _statements()
    count_params = [organization_id, *IN_PROGRESS, up_to]
    with connection.cursor() as cursor:
        if locked or connection.vendor != "postgresql":
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
    # NO KEY UPDATE, as observability.rows.rows_lock: other transactions' foreign keys to the row go on.
    lock = f"SELECT 1 FROM {organizations} WHERE {quote('id')} = %s FOR NO KEY UPDATE"  # noqa: S608
    active = f"SELECT 1 FROM {runs} WHERE {organization} = %s AND {status} IN ({statuses}) LIMIT %s"  # noqa: S608
    return lock, f"SELECT count(*) FROM ({active}) AS in_progress"  # noqa: S608
