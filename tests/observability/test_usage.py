"""GET /api/usage and /api/usage/agents/{id}: SQL aggregates of live runs plus pruned rollups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from observability.models import UsageDailyRollup
from observability.sql import period_window
from tests.agents.factories import make_agent
from tests.api_cases import APIResourceCases, Call
from tests.observability.factories import run, save

pytestmark = pytest.mark.django_db

GONE = "agent-" + "d" * 32  # an agent deleted since: its runs stay in the ledger


def month_days():
    start, end = period_window("month")
    return start + dt.timedelta(minutes=30), start + dt.timedelta(days=1, hours=5)


class TestUsageAPI(APIResourceCases):
    detail_path = "/api/usage/agents/{pk}"
    reads = (Call("GET", "/api/usage"),)
    detail_queries = 3  # user, the agent, day groups of runs + rollups

    def make(self, organization):
        return make_agent(organization)


@pytest.fixture
def ledger(viewer, other_org_owner):
    """Runs of two agents on two days of this month, an orchestration run, a deleted agent's run,
    a run of last month and another organization's run."""
    org = viewer.organization
    alpha, beta = make_agent(org, name="Alpha"), make_agent(org, name="Beta")
    day1, day2 = month_days()
    rows = save(
        run(org, at=day1, agent_id=alpha.pk, cost="0.10", input_tokens=100, output_tokens=10),
        run(
            org, at=day1, agent_id=alpha.pk, cost="0.20", input_tokens=200, output_tokens=20, status="failed"
        ),
        run(org, at=day2, agent_id=alpha.pk, cost="0.30", input_tokens=300, output_tokens=30),
        run(org, at=day1, agent_id=beta.pk, cost="1.00", input_tokens=1000, output_tokens=100),
        run(org, at=day2, agent_id=beta.pk, cost="2.00", input_tokens=2000, output_tokens=200),
        run(
            org,
            at=day2,
            kind="orchestration",
            orchestration_id="orch-" + "1" * 32,
            cost="0.05",
            input_tokens=5,
            output_tokens=0,
        ),
        run(org, at=day2, agent_id=GONE, cost="0.01", input_tokens=1, output_tokens=1),
    )
    save(
        run(org, at=period_window("month")[0] - dt.timedelta(minutes=1), agent_id=alpha.pk, cost="50"),
        run(other_org_owner.organization, at=day1, agent_id="agent-" + "e" * 32, cost="70"),
    )
    return alpha, beta, rows


def expected(rows):
    return (
        len(rows),
        sum((row.cost_usd for row in rows), Decimal(0)),
        sum(row.input_tokens + row.output_tokens for row in rows),
    )


def test_usage_sums_equal_the_runs_of_the_period(viewer_client, ledger):
    alpha, beta, rows = ledger
    usage = viewer_client.get("/api/usage?period=month").json()
    start, end = period_window("month")

    executions, cost, tokens = expected(rows)
    assert usage["period"] == "month"
    assert usage["start"] == start.isoformat().replace("+00:00", "Z") and usage["end"]
    assert usage["total_executions"] == executions == 7
    assert usage["total_cost_usd"] == pytest.approx(float(cost)) == 3.66
    assert usage["total_tokens"] == tokens

    by_agent = {row["agent_id"]: row for row in usage["by_agent"]}
    assert by_agent[beta.pk] == {
        "agent_id": beta.pk,
        "name": "Beta",
        "executions": 2,
        "cost_usd": 3.0,
        "tokens": 3300,
    }
    assert by_agent[alpha.pk]["executions"] == 3 and by_agent[alpha.pk]["cost_usd"] == pytest.approx(0.6)
    assert by_agent[alpha.pk]["tokens"] == 660 and by_agent[alpha.pk]["name"] == "Alpha"
    assert by_agent[GONE]["name"] is None and by_agent[GONE]["executions"] == 1
    assert by_agent[None] == {"agent_id": None, "name": None, "executions": 1, "cost_usd": 0.05, "tokens": 5}
    assert [row["agent_id"] for row in usage["by_agent"]][:2] == [beta.pk, alpha.pk]  # by cost
    assert sum(row["executions"] for row in usage["by_agent"]) == usage["total_executions"]

    day1, day2 = (day.date().isoformat() for day in month_days())
    by_day = {row["date"]: row for row in usage["by_day"]}
    assert list(by_day) == [day1, day2]
    assert by_day[day1]["executions"] == 3 and by_day[day1]["cost_usd"] == pytest.approx(1.30)
    assert by_day[day2]["executions"] == 4 and by_day[day2]["cost_usd"] == pytest.approx(2.36)
    assert by_day[day1]["tokens"] + by_day[day2]["tokens"] == tokens


def test_another_organization_sees_none_of_it(other_client, ledger):
    usage = other_client.get("/api/usage?period=month").json()
    assert usage["total_executions"] == 1 and usage["total_cost_usd"] == 70
    assert [row["name"] for row in usage["by_agent"]] == [None]  # Alpha is not theirs: no name leaks


def test_rollups_of_pruned_runs_add_to_live_runs(viewer_client, viewer, ledger):
    alpha, _, rows = ledger
    day1, _ = month_days()
    UsageDailyRollup.objects.create(
        organization=viewer.organization,
        agent_id=alpha.pk,
        date=day1.date(),
        kind="agent_test",
        executions=10,
        errors=2,
        input_tokens=1000,
        output_tokens=500,
        cost_usd=Decimal("4.5"),
    )
    usage = viewer_client.get("/api/usage?period=month").json()
    assert usage["total_executions"] == len(rows) + 10
    assert (
        usage["total_cost_usd"] == pytest.approx(3.66 + 4.5)
        and usage["total_tokens"] == expected(rows)[2] + 1500
    )
    alpha_row = next(row for row in usage["by_agent"] if row["agent_id"] == alpha.pk)
    assert alpha_row["executions"] == 13 and alpha_row["cost_usd"] == pytest.approx(5.1)
    first_day = next(row for row in usage["by_day"] if row["date"] == day1.date().isoformat())
    assert first_day["executions"] == 13


def test_one_agents_usage(viewer_client, ledger):
    alpha, _, _ = ledger
    usage = viewer_client.get(f"/api/usage/agents/{alpha.pk}?period=month").json()
    assert usage["agent_id"] == alpha.pk and usage["name"] == "Alpha"
    assert usage["total_executions"] == 3 and usage["total_cost_usd"] == pytest.approx(0.6)
    assert usage["total_tokens"] == 660
    assert [row["executions"] for row in usage["by_day"]] == [2, 1]


def test_agent_usage_of_a_deleted_agent_keeps_its_id(viewer_client, ledger):
    usage = viewer_client.get(f"/api/usage/agents/{GONE}").json()
    assert usage["name"] is None and usage["total_executions"] == 1 and usage["period"] == "month"


def test_agent_usage_is_a_404_for_an_agent_never_known(viewer_client, ledger):
    assert viewer_client.get("/api/usage/agents/agent-" + "0" * 32).status_code == 404


def test_the_periods_are_calendar_windows():
    now = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)  # a Friday
    assert period_window("day", now=now) == (
        dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )
    assert period_window("week", now=now)[0] == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert period_window("month", now=now) == (
        dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )
    assert period_window("year", now=now)[1] == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_an_unknown_period_is_a_400_listing_the_valid_ones(viewer_client):
    for path in ("/api/usage?period=decade", "/api/usage/agents/agent-x?period=decade"):
        response = viewer_client.get(path)
        assert response.status_code == 400
        assert all(
            period in response.json()["error"]["message"] for period in ("day", "week", "month", "year")
        )


@pytest.mark.parametrize("agents", [1, 6])
def test_usage_query_count_is_constant(viewer_client, viewer, django_assert_num_queries, agents):
    day1, day2 = month_days()
    for index in range(agents):
        agent = make_agent(viewer.organization, name=f"A{index}")
        save(*(run(viewer.organization, at=day, agent_id=agent.pk) for day in (day1, day2) for _ in range(3)))
        UsageDailyRollup.objects.create(
            organization=viewer.organization,
            agent_id=agent.pk,
            date=day1.date(),
            kind="agent_test",
            executions=1,
        )
    with django_assert_num_queries(3):  # user, (agent, day) groups of runs + rollups, agent names
        usage = viewer_client.get("/api/usage").json()
    assert usage["total_executions"] == agents * 7
    with django_assert_num_queries(3):  # user, the agent, day groups of runs + rollups
        assert viewer_client.get(f"/api/usage/agents/{agent.pk}").json()["total_executions"] == 7
