"""providers 0002: holds left in the old BudgetHold table are released before it is dropped."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.accounts.factories import make_organization

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("providers", "0001_initial")]
AFTER = [("providers", "0002_delete_budgethold")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_holds_left_behind_are_released_when_the_table_goes():
    organization = make_organization()
    apps = migrate(BEFORE)
    try:
        counter = apps.get_model("providers", "BudgetCounter").objects.create(
            organization_id=organization.pk,
            subject="agent-x",
            month="2026-11-01",
            reserved_usd=Decimal("0.5"),
        )
        holds = apps.get_model("providers", "BudgetHold").objects
        holds.create(counter_id=counter.pk, run_id="run-dead", amount_usd=Decimal("0.2"))
        holds.create(counter_id=counter.pk, run_id="run-dead", amount_usd=Decimal("0.2"))
    finally:
        apps = migrate(AFTER)
    counters = apps.get_model("providers", "BudgetCounter").objects
    assert counters.get(pk=counter.pk).reserved_usd == Decimal("0.1")
