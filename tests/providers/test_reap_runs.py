"""`manage.py reap_runs`: runs of a dead process end failed, with their budget holds freed."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from deployments.calls import call_finished
from observability.models import Run, RunEvent, Span
from observability.queue import finished_dump
from providers.budgets import Budget, budget_reserve
from providers.models import BudgetCounter
from tests.observability.factories import queued_run
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)


def call_in_flight(run, config, amount: str) -> None:
    """An LLM call of `run` that reserved `amount` on the config's budget and never settled: its
    holds are on its open span, as the gateway leaves them."""
    holds = budget_reserve(
        organization_id=run.organization_id,
        budgets=[Budget(config.pk, Decimal("1"), "x")],
        amount=Decimal(amount),
    )
    Span.objects.create(
        run=run,
        organization_id=run.organization_id,
        kind="llm",
        name="call",
        budget_holds=[hold.as_json() for hold in holds],
    )


def test_stale_runs_are_failed_with_a_final_event_and_their_holds_released(member):
    config = make_provider_config(member.organization, budget="1")
    stale = queued_run(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    Run.objects.filter(pk=stale.pk).update(status="running", heartbeat_at=long_ago)
    RunEvent.objects.create(run=stale, seq=1, type="run.started")
    call_in_flight(stale, config, "0.4")  # when the process died
    assert BudgetCounter.objects.get(subject=config.pk).reserved_usd == Decimal("0.4")
    alive = queued_run(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})
    Run.objects.filter(pk=alive.pk).update(status="running", heartbeat_at=timezone.now())

    out = StringIO()
    call_command("reap_runs", stdout=out)

    stale.refresh_from_db()
    assert stale.status == "failed" and stale.error["code"] == "run_abandoned"
    assert RunEvent.objects.filter(run=stale).order_by("seq").last().seq == 2
    assert Span.objects.get(run=stale).status == "failed"
    assert BudgetCounter.objects.get(subject=config.pk).reserved_usd == 0
    assert Run.objects.get(pk=alive.pk).status == "running"
    assert "1 stale run(s) reaped" in out.getvalue()


def test_a_dead_runs_holds_are_released_once(member):
    from providers.budgets import budget_release_run

    config = make_provider_config(member.organization, budget="1")
    dead = queued_run(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})
    call_in_flight(dead, config, "0.4")
    alive = queued_run(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})
    call_in_flight(alive, config, "0.3")

    assert budget_release_run(dead.pk) == 1
    assert budget_release_run(dead.pk) == 0  # its call is closed now: nothing to free twice
    assert BudgetCounter.objects.get(subject=config.pk).reserved_usd == Decimal("0.3")
    assert Span.objects.get(run=dead).status == "failed"


def test_a_reaped_deployment_call_is_reported_to_its_finish_hook(member):
    """The deployment's request metrics count a call whose process died as failed, as they count
    one that failed while its process lived (the hook its row keeps, `Run.finished_hook`)."""
    labels = {"channel": "mcp", "outcome": "failed"}
    before = REGISTRY.get_sample_value("studio_deployment_requests_total", labels) or 0.0
    stale = queued_run(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    hook = finished_dump(functools.partial(call_finished, "mcp"))
    Run.objects.filter(pk=stale.pk).update(status="running", heartbeat_at=long_ago, finished_hook=hook)

    call_command("reap_runs", stdout=StringIO())

    assert Run.objects.get(pk=stale.pk).status == "failed"
    assert REGISTRY.get_sample_value("studio_deployment_requests_total", labels) == before + 1
