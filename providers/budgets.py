"""Monthly budgets that concurrency cannot overrun.

A call first reserves its maximum cost with one conditional UPDATE per budget (the database
re-checks the condition under the row lock), then settles the reservation to the real cost.
Each reservation is also kept as a `BudgetHold` row, so the holds of a crashed run can be freed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from providers.llm.types import BudgetExceeded
from providers.models import BudgetCounter, BudgetHold


def current_month() -> dt.date:
    return timezone.now().date().replace(day=1)


def _counter_id(*, organization_id: str, subject: str, month: dt.date) -> int:
    try:
        with transaction.atomic():
            counter, _ = BudgetCounter.objects.get_or_create(
                subject=subject, month=month, defaults={"organization_id": organization_id}
            )
    except IntegrityError:  # created concurrently
        counter = BudgetCounter.objects.get(subject=subject, month=month)
    return counter.pk


def budget_reserve(
    *,
    organization_id: str,
    subject: str,
    amount: Decimal,
    limit: Decimal | None,
    label: str,
    run_id: str = "",
) -> BudgetHold:
    """Holds `amount` against the subject's monthly `limit` (None = unlimited) or raises
    BudgetExceeded without holding anything."""
    counter_id = _counter_id(organization_id=organization_id, subject=subject, month=current_month())
    with transaction.atomic():
        rows = BudgetCounter.objects.filter(pk=counter_id)
        if limit is not None:
            rows = rows.filter(spent_usd__lte=limit - amount - F("reserved_usd"))
        if rows.update(reserved_usd=F("reserved_usd") + amount) != 1:
            raise BudgetExceeded(
                f"The monthly budget of {label} (${limit:.2f}) would be exceeded by this call."
            )
        return BudgetHold.objects.create(counter_id=counter_id, run_id=run_id, amount_usd=amount)


@transaction.atomic
def budget_settle(hold: BudgetHold, *, cost: Decimal) -> None:
    """Releases the hold and records what the call really cost."""
    BudgetCounter.objects.filter(pk=hold.counter_id).update(
        reserved_usd=Greatest(F("reserved_usd") - hold.amount_usd, Decimal(0)),
        spent_usd=F("spent_usd") + cost,
    )
    BudgetHold.objects.filter(pk=hold.pk).delete()


def budget_release_run(run_id: str) -> int:
    """Frees every hold left by a run that died mid-call; returns how many there were."""
    holds = list(BudgetHold.objects.filter(run_id=run_id))
    for hold in holds:
        budget_settle(hold, cost=Decimal(0))
    return len(holds)


def spent_this_month(subject: str) -> Decimal:
    counter = BudgetCounter.objects.filter(subject=subject, month=current_month()).first()
    return counter.spent_usd if counter else Decimal(0)
