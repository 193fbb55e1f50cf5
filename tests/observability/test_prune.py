"""manage.py prune_runs: old runs go (with spans and events), in batches; usage totals stay."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from observability import rollup
from observability.models import Run, RunEvent, Span, UsageDailyRollup
from observability.usage import usage_for_agent, usage_summary
from tests.agents.factories import make_agent
from tests.observability.factories import event, run, save, span

pytestmark = pytest.mark.django_db


def prune(*args) -> str:
    out = StringIO()
    call_command("prune_runs", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def history(member, other_org_owner):
    """Runs of 100 days ago (with span trees and events), one still 'running' from then, and
    recent runs, in two organizations."""
    org, now = member.organization, timezone.now()
    agent = make_agent(org, name="Alpha")
    old_day = (now - dt.timedelta(days=100)).replace(hour=10, minute=0)  # runs below stay on that day
    old = save(
        run(org, at=old_day, agent_id=agent.pk, cost="0.10", input_tokens=100, output_tokens=10),
        run(org, at=old_day + dt.timedelta(hours=1), agent_id=agent.pk, cost="0.20", status="failed"),
        run(org, at=old_day + dt.timedelta(hours=2), agent_id=agent.pk, cost="0.30", input_tokens=7),
        run(org, at=old_day, kind="orchestration", cost="1.00", input_tokens=1000, output_tokens=1),
        run(org, at=old_day, kind="deployment", agent_id=agent.pk, status="cancelled", cost="0.05"),
        run(other_org_owner.organization, at=old_day, cost="9.00"),
    )
    for row in old:
        root = span(row, "run", "root")
        child = span(row, "agent", "Alpha", parent=root)
        span(row, "llm", "mock:mock-1", parent=child)
        event(row, 1)
        event(row, 2, "run.completed")
    stuck = save(run(org, at=old_day, agent_id=agent.pk, status="running"))[0]
    recent = save(
        run(org, at=now - dt.timedelta(days=5), agent_id=agent.pk), run(org, at=now, agent_id=agent.pk)
    )
    span(recent[0], "run", "root")
    event(recent[0], 1)
    return agent, old, stuck, recent, old_day


def usage_then(member, old_day, agent):
    summary = usage_summary(organization_id=member.organization_id, period="month", now=old_day)
    per_agent = usage_for_agent(
        organization_id=member.organization_id, agent_id=agent.pk, name=None, period="year", now=old_day
    )
    return summary, per_agent


def test_prune_deletes_old_finished_runs_only_and_usage_totals_stay_equal(member, history):
    agent, old, stuck, recent, old_day = history
    before = usage_then(member, old_day, agent)

    output = prune("--older-than", "90d", "--batch-size", "2")

    assert "6 finished runs" in output and "pruned 6/6" in output
    assert not Run.objects.filter(pk__in=[row.pk for row in old]).exists()
    assert not Span.objects.filter(run_id__in=[row.pk for row in old]).exists()
    assert not RunEvent.objects.filter(run_id__in=[row.pk for row in old]).exists()
    assert set(Run.objects.values_list("pk", flat=True)) == {stuck.pk, *(row.pk for row in recent)}
    assert (
        Span.objects.filter(run=recent[0]).count() == 1
        and RunEvent.objects.filter(run=recent[0]).count() == 1
    )

    after = usage_then(member, old_day, agent)
    assert after == before
    # the five finished old runs and the stuck one (0.01), which stays live
    assert before[0]["total_executions"] == 6 and before[0]["total_cost_usd"] == Decimal("1.66")

    rollups = UsageDailyRollup.objects.filter(organization=member.organization)
    first = rollups.get(agent_id=agent.pk, date=old_day.date(), kind="agent_test")
    assert (first.executions, first.errors, first.input_tokens) == (3, 1, 117)
    assert first.cost_usd == Decimal("0.60")
    assert rollups.get(agent_id="", kind="orchestration").output_tokens == 1
    assert rollups.get(kind="deployment").executions == 1
    assert UsageDailyRollup.objects.exclude(organization=member.organization).get().cost_usd == Decimal("9")


def test_prune_is_idempotent(member, history):
    agent, _, _, _, old_day = history
    prune("--older-than", "90d")
    rollups = list(UsageDailyRollup.objects.order_by("pk").values())
    before = usage_then(member, old_day, agent)

    output = prune("--older-than", "90d")

    assert output.startswith("0 finished runs")
    assert list(UsageDailyRollup.objects.order_by("pk").values()) == rollups
    assert usage_then(member, old_day, agent) == before


def test_a_later_prune_adds_to_the_same_days_rollup(member, history):
    agent, _, _, _, old_day = history
    prune("--older-than", "90d")
    save(run(member.organization, at=old_day + dt.timedelta(minutes=5), agent_id=agent.pk, cost="2"))
    before = usage_then(member, old_day, agent)
    prune("--older-than", "90d")
    assert usage_then(member, old_day, agent) == before
    row = UsageDailyRollup.objects.get(agent_id=agent.pk, date=old_day.date(), kind="agent_test")
    assert row.executions == 4 and row.cost_usd == Decimal("2.60")


def test_dry_run_and_shorter_ages(member, history):
    assert prune("--older-than", "90d", "--dry-run").startswith("6 finished runs")
    assert Run.objects.count() == 9
    assert prune("--older-than", "2d").startswith("7 finished runs")  # the 5-day-old one too
    assert Run.objects.count() == 2  # the stuck running run and today's


@pytest.mark.parametrize("args", [["--older-than", "ninety"], ["--older-than", "0d"], ["--batch-size", "0"]])
def test_bad_arguments_are_refused(args, db):
    with pytest.raises(CommandError):
        prune(*args)


def test_rollup_upserts_are_chunked(member, history, monkeypatch):
    agent, _, _, _, old_day = history
    monkeypatch.setattr(rollup, "UPSERT_ROWS", 2)  # 3 rollup rows in the batch: 2 statements
    before = usage_then(member, old_day, agent)
    prune("--older-than", "90d", "--batch-size", "50")
    assert usage_then(member, old_day, agent) == before
    assert UsageDailyRollup.objects.count() == 4  # (agent_test, orchestration, deployment) + other org
