"""Monthly budgets that concurrency cannot overrun.

A call first reserves its maximum cost with one conditional UPDATE per budget (the database
re-checks the condition under the row lock), then settles the reservation to the real cost.
Counter ids are remembered, so a reservation is that UPDATE alone. The call's `llm` span keeps its
holds while it is in flight (stored in the same transaction), so the holds of a crashed run can be
freed: `budget_release_run` (by the reaper, and by a run that resumes, which gets it from the
ledger's registry: `observability.replay.hold_release_register`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from observability.models import Span
from observability.replay import hold_release_register
from observability.signals import ledger_event_on_commit
from providers.llm.types import BudgetExceeded
from providers.models import BudgetCounter


def current_month() -> dt.date:
    return timezone.now().date().replace(day=1)


@dataclass(frozen=True)
class Hold:
    """An amount reserved on a budget counter, until the call settles."""

    counter_id: int
    amount_usd: Decimal

    def as_json(self) -> list:
        return [self.counter_id, str(self.amount_usd)]

    @classmethod
    def from_json(cls, value: list) -> Hold:
        counter_id, amount = value
        return cls(counter_id, Decimal(amount))


@dataclass(frozen=True)
class Budget:
    subject: str  # a provider config id or an agent id
    limit: Decimal | None  # None: unlimited, the spend is still counted
    label: str  # how a refusal names it


# (subject, month) -> counter id. Counters are never renamed, so an id stays right until its row
# is deleted (with its organization); a reservation that finds no row looks it up again.
_counter_ids: dict[tuple[str, dt.date], int] = {}


def _counter_id(*, organization_id: str, subject: str, month: dt.date, cached: bool = True) -> int:
    key = (subject, month)
    if cached and key in _counter_ids:
        return _counter_ids[key]
    try:
        with transaction.atomic():
            counter, _ = BudgetCounter.objects.get_or_create(
                subject=subject, month=month, defaults={"organization_id": organization_id}
            )
    except IntegrityError:  # created concurrently
        counter = BudgetCounter.objects.get(subject=subject, month=month)
    _counter_ids[key] = counter.pk
    return counter.pk


# The statements of every call, written out: the ORM's compiler cost more than the database
# (names come from the models, values are always parameters).
_TABLE = BudgetCounter._meta.db_table
_RESERVE = f"UPDATE {_TABLE} SET reserved_usd = reserved_usd + CAST(%s AS NUMERIC) WHERE id = %s"  # noqa: S608
_RESERVE_WITHIN = f"{_RESERVE} AND spent_usd <= CAST(%s AS NUMERIC) - reserved_usd"
_SETTLE = (
    f"UPDATE {_TABLE} SET reserved_usd = CASE WHEN reserved_usd > CAST(%s AS NUMERIC)"  # noqa: S608
    " THEN reserved_usd - CAST(%s AS NUMERIC) ELSE 0 END,"
    " spent_usd = spent_usd + CAST(%s AS NUMERIC) WHERE id = %s"
)


def _add_reserved(counter_id: int, amount: Decimal, limit: Decimal | None) -> bool:
    """The conditional UPDATE: the database checks the limit under the row's lock."""
    with connection.cursor() as cursor:
        if limit is None:
            cursor.execute(_RESERVE, [amount, counter_id])
        else:
            cursor.execute(_RESERVE_WITHIN, [amount, counter_id, limit - amount])
        return cursor.rowcount == 1


def _hold(*, organization_id: str, budget: Budget, amount: Decimal, month: dt.date) -> int:
    """Adds `amount` to the reserved sum of the budget's counter if it fits; the counter's id."""
    counter_id = _counter_id(organization_id=organization_id, subject=budget.subject, month=month)
    for attempt in (1, 2):
        if _add_reserved(counter_id, amount, budget.limit):
            return counter_id
        fresh_id = _counter_id(
            organization_id=organization_id, subject=budget.subject, month=month, cached=False
        )
        if fresh_id == counter_id or attempt == 2:  # the row is there: the budget is spent
            break
        counter_id = fresh_id
    raise BudgetExceeded(
        f"The monthly budget of {budget.label} (${budget.limit:.2f}) would be exceeded by this call."
    )


def _refusal_announce(organization_id: str, budget: Budget, amount: Decimal, month, refusal) -> None:
    """`budget.exceeded` for outbound webhooks, once the refusal's transaction commits."""
    data = {
        "subject": budget.subject,
        "budget": budget.label,
        "limit_usd": budget.limit,
        "amount_usd": amount,
        "month": month.isoformat(),
        "message": refusal.message,
    }
    ledger_event_on_commit(organization_id=organization_id, event="budget.exceeded", data=data)


def budget_reserve(*, organization_id: str, budgets: list[Budget], amount: Decimal) -> list[Hold]:
    """Holds `amount` against each budget's monthly limit: all of them, or none and BudgetExceeded.
    A refusal undoes the holds made before it, so it leaves the caller's transaction usable."""
    month = current_month()
    held: list[Hold] = []
    with transaction.atomic(savepoint=False):  # the caller's transaction, if any, is the unit
        for budget in budgets:
            try:
                counter_id = _hold(organization_id=organization_id, budget=budget, amount=amount, month=month)
            except BudgetExceeded as exc:
                refusal = exc
                _refusal_announce(organization_id, budget, amount, month, exc)
                break
            held.append(Hold(counter_id, amount))
        else:
            return held
        budget_settle(held, cost=Decimal(0))
    raise refusal


@transaction.atomic(savepoint=False)
def budget_settle(holds: list[Hold], *, cost: Decimal) -> None:
    """Releases the holds of one call and records what it really cost on each held budget."""
    with connection.cursor() as cursor:
        for hold in holds:
            cursor.execute(_SETTLE, [hold.amount_usd, hold.amount_usd, cost, hold.counter_id])


@hold_release_register
@transaction.atomic
def budget_release_run(run_id: str, *, status: str = "failed", error: str = "run abandoned") -> int:
    """Frees the holds of the LLM calls a dead run left in flight and closes their spans with
    `status` and `error` (in one transaction, so a second reaper finds nothing to free twice);
    returns how many calls there were."""
    in_flight = list(
        Span.objects.select_for_update().filter(run_id=run_id, kind=Span.Kind.LLM, ended_at__isnull=True)
    )
    for span in in_flight:
        budget_settle([Hold.from_json(hold) for hold in span.budget_holds], cost=Decimal(0))
    Span.objects.filter(pk__in=[span.pk for span in in_flight]).update(
        status=status, ended_at=timezone.now(), error=error, budget_holds=[]
    )
    return len(in_flight)


def spent_this_month(subject: str) -> Decimal:
    counter = BudgetCounter.objects.filter(subject=subject, month=current_month()).first()
    return counter.spent_usd if counter else Decimal(0)
