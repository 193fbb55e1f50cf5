"""The ledger's one-row statements (observability/rows.py) store exactly what the ORM stores: an
instance stored with `row_insert` is the row `Model.save(force_insert=True)` makes of an equal
instance, and `row_update(Model, pk, **changes)` leaves the row `QuerySet.update(**changes)`
leaves. Rows are compared column by column as the database driver returns them (no field
converters), so a JSON, decimal or datetime stored differently shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, models

from observability.models import Run, RunEvent, Span
from observability.rows import row_insert, row_update

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)
NESTED = {"text": 'naïve ☃ "quoted"', "n": 3, "x": 0.1, "ok": True, "none": None, "list": [1, {"a": []}]}


@pytest.fixture
def stored_run(member) -> Run:
    return Run.objects.create(organization_id=member.organization_id, user=member, kind=Run.Kind.AGENT_TEST)


def run_with_defaults(run: Run) -> Run:
    return Run(organization_id=run.organization_id, kind=Run.Kind.ORCHESTRATION)


def run_with_everything(run: Run) -> Run:
    return Run(
        organization_id=run.organization_id,
        user_id=run.user_id,
        kind=Run.Kind.DEPLOYMENT,
        agent_id="agent-1",
        deployment_id="dep-1",
        status=Run.Status.RUNNING,
        input=NESTED,
        output=["an", {"answer": 42}],
        error={"code": "provider_error", "message": "it failed"},
        created_at=AT,
        started_at=AT,
        heartbeat_at=AT + dt.timedelta(seconds=1),
        input_tokens=7,
        cost_usd=Decimal("0.12345678901234"),  # more places than the column keeps: rounded
    )


def span_with_defaults(run: Run) -> Span:
    return Span(run_id=run.pk, organization_id=run.organization_id, kind=Span.Kind.AGENT, name="agent")


def span_with_everything(run: Run) -> Span:
    parent = Span.objects.create(run_id=run.pk, organization_id=run.organization_id, kind="run", name="run")
    return Span(
        run_id=run.pk,
        organization_id=run.organization_id,
        parent_id=parent.pk,
        kind=Span.Kind.LLM,
        name="openai:gpt-4o",
        agent_id="agent-1",
        provider_id="prov-1",
        provider_kind="openai",
        model="gpt-4o",
        started_at=AT,
        cost_usd=Decimal("0.0000001"),
        attributes=NESTED,
        budget_holds=[["counter-1", "0.5"], ["counter-2", 0.25]],
    )


def event_with_defaults(run: Run) -> RunEvent:
    return RunEvent(run_id=run.pk, seq=1, type="run.started")


def event_with_everything(run: Run) -> RunEvent:
    return RunEvent(
        run_id=run.pk, seq=2, type="agent.completed", agent_id="agent-1", data=NESTED, timestamp=AT
    )


MAKERS = [
    run_with_defaults,
    run_with_everything,
    span_with_defaults,
    span_with_everything,
    event_with_defaults,
    event_with_everything,
]

# What the ledger changes on each model (observability/recorder.py, services.py), and more.
CHANGES = {
    Run: {
        "status": Run.Status.COMPLETED,
        "output": {"answer": NESTED},
        "error": None,
        "completed_at": AT + dt.timedelta(minutes=1),
        "heartbeat_at": None,
        "execution_time_ms": 60_000,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": Decimal("1.23456789012"),
        "user_id": None,
    },
    Span: {
        "ended_at": AT + dt.timedelta(microseconds=1),
        "duration_ms": 0,
        "status": "failed",
        "input_tokens": 3,
        "cost_usd": Decimal(0),
        "attributes": {**NESTED, "code": "provider_error"},
        "error": "it failed",
        "budget_holds": [],
    },
    RunEvent: {"type": "run.failed", "data": {}, "agent_id": ""},
}


def twin(instance: models.Model) -> models.Model:
    """An equal, unsaved instance: every column's value, the primary key's too."""
    model = type(instance)
    return model(**{field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields})


def stored(model: type[models.Model], pk) -> dict:
    """The row as the driver returns it, without an auto-increment key (the database's own)."""
    meta = model._meta
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s", [pk])  # noqa: S608
        columns = [column[0] for column in cursor.description]
        (row,) = cursor.fetchall()
    values = dict(zip(columns, row, strict=True))
    if isinstance(meta.pk, models.AutoField):
        del values[meta.pk.column]
    return values


def removed(instance: models.Model) -> dict:
    """The stored row of `instance`, deleted so that an equal instance can be stored in its place."""
    row = stored(type(instance), instance.pk)
    type(instance).objects.filter(pk=instance.pk).delete()
    return row


def name_of(make: Callable) -> str:
    return make.__name__


@pytest.mark.parametrize("make", MAKERS, ids=name_of)
def test_row_insert_stores_what_save_stores(make, stored_run):
    inserted = make(stored_run)
    saved = twin(inserted)
    row_insert(inserted)
    assert inserted.pk is not None and not inserted._state.adding
    by_row_insert = removed(inserted)
    saved.save(force_insert=True)
    assert stored(type(saved), saved.pk) == by_row_insert


@pytest.mark.parametrize("make", MAKERS, ids=name_of)
def test_row_update_stores_what_queryset_update_stores(make, stored_run):
    instance = make(stored_run)
    again = twin(instance)
    model, changes = type(instance), CHANGES[type(instance)]
    instance.save(force_insert=True)
    assert row_update(model, instance.pk, **changes) == 1
    by_row_update = removed(instance)
    again.save(force_insert=True)
    assert model.objects.filter(pk=again.pk).update(**changes) == 1
    assert stored(model, again.pk) == by_row_update


def test_row_update_of_a_missing_row_matches_nothing(stored_run):
    assert row_update(Run, "run-" + "0" * 32, status=Run.Status.FAILED) == 0
    assert Run.objects.get(pk=stored_run.pk).status == Run.Status.QUEUED
