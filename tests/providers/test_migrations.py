"""providers 0002: holds left in the old BudgetHold table are released before it is dropped.
providers 0003: the keys stored before key_origin existed are pinned to their base URL's origin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.accounts.factories import make_organization

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("providers", "0001_initial")]
AFTER = [("providers", "0002_delete_budgethold")]
BEFORE_KEY_ORIGIN = AFTER
WITH_KEY_ORIGIN = [("providers", "0003_key_origin")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def _latest_schema_afterwards():
    """The tests after these expect the newest schema."""
    yield
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())


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


def test_keys_stored_before_are_pinned_to_the_origin_of_their_base_url():
    organization = make_organization()
    apps = migrate(BEFORE_KEY_ORIGIN)
    configs = apps.get_model("providers", "APIProviderConfig").objects
    rows = {
        url: configs.create(
            organization_id=organization.pk, provider="openai_compatible", name=url, api_base_url=url
        )
        for url in ("https://Models.Example.com/v1/", "http://127.0.0.1:8080/v1", "")
    }
    apps = migrate(WITH_KEY_ORIGIN)
    origins = dict(apps.get_model("providers", "APIProviderConfig").objects.values_list("pk", "key_origin"))
    assert [origins[row.pk] for row in rows.values()] == [
        "https://models.example.com:443",
        "http://127.0.0.1:8080",
        "",
    ]
