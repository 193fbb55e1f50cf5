"""Runtime monitoring: /api/runtime/status, /api/runtime/agents and /api/runtime/metrics, from run
records, circuit breakers and budget counters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.breakers import POLICY, CacheCircuitBreaker
from agents.runtime_status import agent_health
from observability.models import Run, Span
from providers.budgets import current_month
from providers.models import BudgetCounter
from tests.agents.agent_configs import agent_yaml
from tests.agents.factories import make_agent
from tests.api_cases import APIResourceCases, Call
from tests.observability.factories import run, save
from tests.orchestrations.helpers import make_agent as orchestration_agent
from tests.orchestrations.helpers import make_orchestration, says

pytestmark = pytest.mark.django_db


def with_agent_spans(*runs: Run) -> list[Run]:
    """Saves the runs and gives each run of an agent that started the `agent` span a real execution
    records, with the run's status and timing (a queued run has not started: no span yet)."""
    saved = save(*runs)
    Span.objects.bulk_create(
        agent_span(row, row.agent_id, status=row.status)
        for row in saved
        if row.agent_id and row.status != Run.Status.QUEUED
    )
    return saved


def agent_span(row: Run, agent_id: str, *, status: str) -> Span:
    """An execution of the agent within `row`: its span started when the run did."""
    ended = (
        None
        if status == "running"
        else row.created_at + dt.timedelta(milliseconds=row.execution_time_ms or 0)
    )
    return Span(
        run=row,
        organization_id=row.organization_id,
        kind=Span.Kind.AGENT,
        name="agent",
        agent_id=agent_id,
        status=status,
        started_at=row.created_at,
        ended_at=ended,
        duration_ms=None if ended is None else row.execution_time_ms,
    )


def open_breaker(agent_id: str) -> None:
    breaker = CacheCircuitBreaker()
    for _ in range(POLICY.failure_threshold):
        async_to_sync(breaker.record)(agent_id, success=False)


class TestRuntimeAPI(APIResourceCases):
    list_path = "/api/runtime/agents"
    reads = (Call("GET", "/api/runtime/status"), Call("GET", "/api/runtime/metrics"))
    list_queries = 4  # user, page with its count (last run + budget subqueries), stats, p95

    def make(self, organization):
        agent = make_agent(organization)
        with_agent_spans(run(organization, agent_id=agent.pk))
        return agent


@pytest.fixture
def fleet(viewer, other_org_owner):
    """Broken (breaker open after failures), Steady (healthy), Flaky (80% success), Sleepy (idle:
    its only run is two days old), and another organization's agent with a running run."""
    org, now = viewer.organization, timezone.now()
    broken = make_agent(org, agent_yaml(config={"budget_limit_usd": 5}), name="Broken")
    steady = make_agent(org, agent_yaml(config={"budget_limit_usd": 2.5}), name="Steady")
    flaky = make_agent(org, name="Flaky")
    sleepy = make_agent(org, name="Sleepy")
    with_agent_spans(
        *(
            run(org, at=now - dt.timedelta(minutes=10 + i), agent_id=broken.pk, status="failed")
            for i in range(5)
        ),
        *(
            run(org, at=now - dt.timedelta(hours=i + 1), agent_id=steady.pk, execution_time_ms=100 * (i + 1))
            for i in range(10)
        ),
        *(run(org, at=now - dt.timedelta(hours=2), agent_id=flaky.pk) for _ in range(8)),
        *(run(org, at=now - dt.timedelta(hours=3), agent_id=flaky.pk, status="failed") for _ in range(2)),
        run(org, at=now - dt.timedelta(hours=1), agent_id=flaky.pk, status="cancelled"),
        run(org, at=now - dt.timedelta(days=2), agent_id=sleepy.pk),
        run(org, at=now - dt.timedelta(seconds=5), agent_id=steady.pk, status="running"),
        run(org, at=now, agent_id=steady.pk, status="queued"),
        run(org, at=now, kind="orchestration", status="running"),
    )
    open_breaker(broken.pk)
    BudgetCounter.objects.create(
        organization=org, subject=steady.pk, month=current_month(), spent_usd=Decimal("1.25")
    )
    BudgetCounter.objects.create(
        organization=org, subject=steady.pk, month=current_month() - dt.timedelta(days=40), spent_usd=9
    )
    theirs = make_agent(other_org_owner.organization, name="Theirs")
    with_agent_spans(run(other_org_owner.organization, agent_id=theirs.pk, status="running"))
    return broken, steady, flaky, sleepy


def test_runtime_agents_reflect_breakers_records_and_budgets(viewer_client, fleet):
    broken, steady, flaky, sleepy = fleet
    page = viewer_client.get("/api/runtime/agents").json()

    assert page["count"] == 4
    rows = {row["name"]: row for row in page["results"]}
    assert [row["name"] for row in page["results"]] == ["Broken", "Flaky", "Sleepy", "Steady"]

    assert rows["Broken"]["status"] == "unhealthy" and rows["Broken"]["circuit_breaker_state"] == "open"
    assert rows["Broken"]["success_rate_24h"] == 0 and rows["Broken"]["failures_24h"] == 5
    assert rows["Broken"]["budget_limit"] == 5 and rows["Broken"]["budget_used"] == 0

    assert rows["Steady"]["status"] == "healthy" and rows["Steady"]["circuit_breaker_state"] == "closed"
    # Its 10 finished runs and the running one; the queued run has not started.
    assert rows["Steady"]["success_rate_24h"] == 1 and rows["Steady"]["runs_24h"] == 11
    assert rows["Steady"]["p95_latency_ms_24h"] == pytest.approx(955)  # 100..1000 ms, interpolated
    assert rows["Steady"]["budget_used"] == 1.25 and rows["Steady"]["budget_limit"] == 2.5
    assert rows["Steady"]["last_heartbeat"]  # its newest run (queued just now)
    assert rows["Flaky"]["runs_24h"] == 11 and rows["Flaky"]["failures_24h"] == 2  # one cancelled

    assert rows["Flaky"]["status"] == "degraded" and rows["Flaky"]["success_rate_24h"] == 0.8
    assert rows["Flaky"]["budget_limit"] is None

    assert rows["Sleepy"]["status"] == "idle" and rows["Sleepy"]["runs_24h"] == 0
    assert rows["Sleepy"]["success_rate_24h"] is None and rows["Sleepy"]["p95_latency_ms_24h"] is None
    assert rows["Sleepy"]["last_heartbeat"] < rows["Steady"]["last_heartbeat"]


def test_runtime_agents_are_paginated(viewer_client, fleet):
    page = viewer_client.get("/api/runtime/agents?limit=2&page=2").json()
    assert page["count"] == 4 and [row["name"] for row in page["results"]] == ["Sleepy", "Steady"]


def test_runtime_status_counts_runs_and_agent_health(viewer_client, other_client, fleet):
    status = viewer_client.get("/api/runtime/status").json()
    assert status["active_runs"] == 2 and status["pending_tasks"] == 1
    assert status["total_agents"] == 4 and status["active_agents"] == 3 and status["healthy_count"] == 1
    assert status["agents_by_health"] == {"healthy": 1, "degraded": 1, "unhealthy": 1, "idle": 1}
    theirs = other_client.get("/api/runtime/status").json()
    assert theirs["active_runs"] == 1 and theirs["pending_tasks"] == 0 and theirs["total_agents"] == 1
    assert theirs["agents_by_health"]["idle"] == 0 and theirs["active_agents"] == 1


def test_a_successful_call_closes_the_breaker_again(viewer_client, fleet):
    broken = fleet[0]
    async_to_sync(CacheCircuitBreaker().record)(broken.pk, success=True)
    row = next(r for r in viewer_client.get("/api/runtime/agents").json()["results"] if r["id"] == broken.pk)
    assert row["circuit_breaker_state"] == "closed" and row["status"] == "degraded"  # 0% success in 24h


@pytest.mark.parametrize(
    "breaker, worked, rate, health",
    [
        ("open", 10, 1.0, "unhealthy"),
        ("open", 0, None, "unhealthy"),
        ("half_open", 3, 1.0, "degraded"),
        ("half_open", 0, None, "degraded"),
        ("closed", 10, 0.89, "degraded"),
        ("closed", 10, 0.9, "healthy"),
        ("closed", 2, None, "healthy"),  # only unfinished executions
        ("closed", 0, None, "idle"),  # none, or only cancelled ones
    ],
)
def test_the_health_rule(breaker, worked, rate, health):
    assert agent_health(breaker=breaker, worked_24h=worked, success_rate_24h=rate) == health


def runtime_row(client, agent) -> dict:
    return next(row for row in client.get("/api/runtime/agents").json()["results"] if row["id"] == agent.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("llm_clients_closed")
def test_agents_that_ran_only_inside_an_orchestration_are_counted(auth_client, member):
    org = member.organization
    lead = orchestration_agent(org, "Lead", responses=[says(answer="ok", route_to="Billing")])
    billing = orchestration_agent(org, "Billing")
    shipping = orchestration_agent(org, "Shipping")
    orchestration = make_orchestration(org, "router", [lead, billing, shipping])
    executed = auth_client.post(
        f"/api/orchestrations/{orchestration.pk}/execute", {"input": {"text": "Refund?"}}, format="json"
    )
    assert executed.status_code == 200, executed.content

    for agent in (lead, billing):
        row = runtime_row(auth_client, agent)
        assert (row["status"], row["runs_24h"], row["success_rate_24h"]) == ("healthy", 1, 1.0)
        assert row["failures_24h"] == 0 and row["last_heartbeat"] and row["p95_latency_ms_24h"] is not None
    untouched = runtime_row(auth_client, shipping)
    assert (untouched["status"], untouched["runs_24h"], untouched["last_heartbeat"]) == ("idle", 0, None)
    status = auth_client.get("/api/runtime/status").json()
    assert status["active_agents"] == 2 and status["agents_by_health"]["healthy"] == 2


def test_an_agent_whose_only_run_was_cancelled_is_idle(viewer_client, viewer):
    agent = make_agent(viewer.organization, name="Stopped")
    with_agent_spans(run(viewer.organization, agent_id=agent.pk, status="cancelled"))

    row = runtime_row(viewer_client, agent)

    assert (row["status"], row["runs_24h"], row["success_rate_24h"]) == ("idle", 1, None)
    assert viewer_client.get("/api/runtime/status").json()["agents_by_health"]["idle"] == 1


def test_an_agent_that_failed_within_runs_that_completed_is_degraded(viewer_client, viewer):
    """Under on_agent_error=continue an orchestration completes although one of its agents failed:
    the agent's health follows its own executions, not the runs' outcome."""
    org = viewer.organization
    agent = make_agent(org, name="Fragile")
    runs = save(*(run(org, kind="orchestration") for _ in range(3)))
    Span.objects.bulk_create(
        [
            agent_span(runs[0], agent.pk, status="completed"),
            agent_span(runs[1], agent.pk, status="failed"),
            agent_span(runs[2], agent.pk, status="failed"),
            agent_span(runs[2], agent.pk, status="completed"),  # called twice in that run
        ]
    )

    row = runtime_row(viewer_client, agent)

    assert (row["status"], row["runs_24h"], row["failures_24h"]) == ("degraded", 3, 2)
    assert row["success_rate_24h"] == 0.5


def families(response) -> dict:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_runtime_metrics_are_this_organizations_numbers_in_prometheus_text(
    viewer_client, fleet, other_org_owner
):
    broken, steady, flaky, _ = fleet
    samples = families(viewer_client.get("/api/runtime/metrics", HTTP_ACCEPT="text/plain;version=0.0.4"))

    assert samples[("studio_runtime_active_runs", ())] == 2
    assert samples[("studio_runtime_pending_tasks", ())] == 1
    for health, count in {"healthy": 1, "degraded": 1, "unhealthy": 1, "idle": 1}.items():
        assert samples[("studio_runtime_agents", (("health", health),))] == count
    breaker = "studio_runtime_agent_circuit_breaker"
    assert samples[(breaker, (("agent_id", broken.pk), ("state", "open")))] == 1
    assert samples[(breaker, (("agent_id", steady.pk), ("state", "closed")))] == 1
    assert samples[("studio_runtime_agent_success_rate_24h", (("agent_id", flaky.pk),))] == 0.8
    assert samples[("studio_runtime_agent_budget_used_usd", (("agent_id", steady.pk),))] == 1.25
    assert samples[("studio_runtime_agent_budget_limit_usd", (("agent_id", broken.pk),))] == 5
    assert samples[("studio_runtime_runs_24h", (("kind", "agent_test"), ("status", "failed")))] == 7
    assert samples[("studio_runtime_runs_24h", (("kind", "orchestration"), ("status", "running")))] == 1
    assert (
        samples[("studio_runtime_tokens_24h", (("direction", "input"),))] == 10 * 29
    )  # 29 runs created in the last 24h, 10 input tokens each
    assert all(other_org_owner.organization_id not in str(key) for key in samples)
    theirs = [
        key
        for key in samples
        if key[1] and dict(key[1]).get("agent_id") not in (None, *map(lambda a: a.pk, fleet))
    ]
    assert theirs == []


def test_runtime_metrics_answer_a_scraper_and_refuse_strangers(viewer_client, api_client, fleet):
    scraper_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    assert families(viewer_client.get("/api/runtime/metrics", HTTP_ACCEPT=scraper_accept))
    refused = api_client.get("/api/runtime/metrics")
    assert refused.status_code == 401 and b"not_authenticated" in refused.content


@pytest.mark.parametrize("n", [1, 12])
def test_runtime_query_counts_are_constant(viewer_client, viewer, django_assert_num_queries, n):
    now = timezone.now()
    for index in range(n):
        agent = make_agent(
            viewer.organization, agent_yaml(config={"budget_limit_usd": 1}), name=f"A{index:02}"
        )
        with_agent_spans(
            *(run(viewer.organization, at=now - dt.timedelta(minutes=i), agent_id=agent.pk) for i in range(3))
        )
        BudgetCounter.objects.create(
            organization=viewer.organization, subject=agent.pk, month=current_month()
        )
    with django_assert_num_queries(4):  # user, page with its count (last run + budget subqueries), stats, p95
        assert viewer_client.get("/api/runtime/agents").json()["count"] == n
    with django_assert_num_queries(4):  # user, runs by status, agent ids, stats
        assert viewer_client.get("/api/runtime/status").json()["total_agents"] == n
    with django_assert_num_queries(6):  # user, runs by status, agents, stats, p95, runs by kind/status
        assert viewer_client.get("/api/runtime/metrics").status_code == 200
