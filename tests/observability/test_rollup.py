"""The daily rollups (observability.rollup): usage and the daily metric series read sealed days from
the rollups and the rest from raw runs, and give exactly the answers of the raw runs alone."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from observability.models import Run, RunDailyRollup, UsageDailyRollup, UsageSeal
from observability.rollup import SEAL_GRACE, day_start, live_run_count, usage_seal
from observability.series import METRIC_PERIODS, METRICS, metric_series
from observability.sql import PERIODS
from observability.usage import usage_for_agent, usage_summary
from tests.agents.factories import make_agent
from tests.observability.factories import run, save

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC)  # a Wednesday: the week began on Monday the 2nd
TODAY = day_start(NOW)
GONE = "agent-" + "d" * 32  # an agent deleted since
LAST_INSTANT = dt.timedelta(days=1, microseconds=-1)
HISTORY_DAYS = 50


class Rollback(Exception):
    pass


def answers(organization_id: str, agent_ids: list[str], now: dt.datetime = NOW) -> dict:
    """Every usage and metric answer of the organization at `now`, keyed by what was asked."""
    found = {}
    for period in PERIODS:
        found["usage", period] = usage_summary(organization_id=organization_id, period=period, now=now)
        for agent_id in agent_ids:
            found["agent", agent_id, period] = usage_for_agent(
                organization_id=organization_id, agent_id=agent_id, name=None, period=period, now=now
            )
    for metric in METRICS:
        for period in METRIC_PERIODS:
            found["metric", metric, period] = metric_series(
                organization_id=organization_id, metric=metric, period=period, now=now
            )
    return found


def raw_answers(organization_id: str, agent_ids: list[str], now: dt.datetime = NOW) -> dict:
    """The same answers from the raw runs alone: the organization's seal and rollups removed in a
    savepoint that is rolled back."""
    try:
        with transaction.atomic():
            UsageSeal.objects.filter(organization_id=organization_id).delete()
            UsageDailyRollup.objects.filter(organization_id=organization_id).delete()
            RunDailyRollup.objects.filter(organization_id=organization_id).delete()
            found = answers(organization_id, agent_ids, now)
            raise Rollback
    except Rollback:
        return found


def assert_same(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for key in expected:
        assert found[key] == expected[key], key


def from_the_rollups(found: dict) -> dict:
    """The answers that read sealed days from the rollups: usage, and the daily (30d) series."""
    return {key: value for key, value in found.items() if key[0] != "metric" or key[2] == "30d"}


def sealed_until(organization) -> dt.datetime | None:
    seal = UsageSeal.objects.filter(organization=organization).first()
    return seal.sealed_until if seal is not None else None


@pytest.fixture
def fleet(viewer, other_org_owner):
    """Fifty days of runs of two agents, an orchestration and a deleted agent, at the first and
    last instants of days and in between, with every finished status and varied latencies, costs
    and tokens; the same kind of history for another organization."""
    org = viewer.organization
    alpha, beta = make_agent(org, name="Alpha"), make_agent(org, name="Beta")
    agents = [alpha.pk, beta.pk, GONE, ""]
    rng = random.Random(13)
    rows = []
    for organization, who in ((org, agents), (other_org_owner.organization, ["agent-" + "e" * 32])):
        for days_ago in range(HISTORY_DAYS):
            day = TODAY - dt.timedelta(days=days_ago)
            moments = [day, day + LAST_INSTANT, day + dt.timedelta(hours=rng.randint(1, 22))]
            for moment in moments:
                if moment >= NOW:
                    continue
                agent_id = rng.choice(who)
                rows.append(
                    run(
                        organization,
                        at=moment,
                        agent_id=agent_id,
                        kind="orchestration" if agent_id == "" else rng.choice(["agent_test", "deployment"]),
                        status=rng.choice(["completed", "completed", "failed", "cancelled"]),
                        cost=f"{rng.randint(1, 99_999) / 1_000_000:.6f}",
                        input_tokens=rng.randint(1, 2000),
                        output_tokens=rng.randint(0, 800),
                        execution_time_ms=rng.randint(5, 9000),
                    )
                )
    save(*rows)
    return org, agents


def test_sealed_answers_equal_the_raw_answers_for_every_period_and_metric(fleet):
    org, agents = fleet
    expected = raw_answers(org.pk, agents)
    assert expected["usage", "year"]["total_executions"] > 0

    usage_seal(org.pk, now=NOW)

    assert sealed_until(org) == TODAY  # everything before today; today stays raw
    assert UsageDailyRollup.objects.filter(organization=org).exists()
    assert RunDailyRollup.objects.filter(organization=org, date=TODAY.date() - dt.timedelta(days=1)).exists()
    assert_same(answers(org.pk, agents), expected)


@pytest.mark.parametrize("days", [1, 30, 46, 48])
def test_a_seal_inside_the_periods_splits_them_without_changing_them(fleet, days):
    """The seal stops `days` days into the 50 days of history: inside the year (1), inside the
    30-day series (30), at the month's first day (46) or inside the week (48, the week began 2 days
    back); the windows then span both sources."""
    org, agents = fleet
    expected = raw_answers(org.pk, agents)
    assert usage_seal(org.pk, now=NOW, max_days=days) == days
    first_day = TODAY - dt.timedelta(days=HISTORY_DAYS - 1)
    assert sealed_until(org) == first_day + dt.timedelta(days=days)
    assert_same(answers(org.pk, agents), expected)


def test_a_run_still_running_holds_the_seal_before_its_day_until_it_finishes(fleet):
    org, agents = fleet
    started = TODAY - dt.timedelta(days=3) + dt.timedelta(hours=23, minutes=59)
    (running,) = save(run(org, at=started, agent_id=agents[0], status="running", cost="0", input_tokens=0))
    usage_seal(org.pk, now=NOW)
    assert sealed_until(org) == day_start(started)  # its day and later stay raw
    assert_same(answers(org.pk, agents), raw_answers(org.pk, agents))

    # It finishes after its day ended, with its totals: the raw days still count it.
    Run.objects.filter(pk=running.pk).update(
        status="completed",
        execution_time_ms=7777,
        input_tokens=500,
        output_tokens=50,
        cost_usd=Decimal("0.75"),
    )
    finished = answers(org.pk, agents)
    assert (
        finished["usage", "year"]["total_cost_usd"]
        == (raw_answers(org.pk, agents)["usage", "year"]["total_cost_usd"])
    )
    assert_same(finished, raw_answers(org.pk, agents))

    usage_seal(org.pk, now=NOW)
    assert sealed_until(org) == TODAY
    assert_same(answers(org.pk, agents), finished)


@pytest.mark.parametrize("status", [s for s in Run.Status.values if s not in Run.FINISHED])
def test_every_unfinished_status_holds_the_seal(fleet, status):
    org, _ = fleet
    started = TODAY - dt.timedelta(days=6, hours=-3)
    save(run(org, at=started, status=status, cost="0"))
    usage_seal(org.pk, now=NOW)
    assert sealed_until(org) == day_start(started)


def test_a_day_is_sealed_only_after_its_grace_period(fleet):
    """Just after midnight yesterday is not sealed: a run arriving late (created just before
    midnight, stored after it) still lands in raw rows and is counted."""
    org, agents = fleet
    just_after_midnight = TODAY + SEAL_GRACE - dt.timedelta(minutes=1)
    usage_seal(org.pk, now=just_after_midnight)
    assert sealed_until(org) == TODAY - dt.timedelta(days=1)

    save(run(org, at=TODAY - dt.timedelta(seconds=2), agent_id=agents[1], cost="3.5", input_tokens=9))
    late = answers(org.pk, agents)
    assert_same(late, raw_answers(org.pk, agents))
    assert late["usage", "year"]["total_cost_usd"] > Decimal("3.5")

    usage_seal(org.pk, now=TODAY + SEAL_GRACE)
    assert sealed_until(org) == TODAY
    assert_same(answers(org.pk, agents), late)


def test_rollups_are_read_for_sealed_days(fleet):
    """After the seal, a sealed day's raw runs are no longer read: changing one (which finished runs
    never do) leaves usage and the daily series as sealed, while the raw answer moves."""
    org, agents = fleet
    usage_seal(org.pk, now=NOW)
    sealed = from_the_rollups(answers(org.pk, agents))
    old = Run.objects.filter(organization=org, created_at__lt=TODAY - dt.timedelta(days=2)).first()
    Run.objects.filter(pk=old.pk).update(cost_usd=old.cost_usd + 1000, execution_time_ms=10**6)
    assert_same(from_the_rollups(answers(org.pk, agents)), sealed)
    assert raw_answers(org.pk, agents)["usage", "year"]["total_cost_usd"] == (
        sealed["usage", "year"]["total_cost_usd"] + 1000
    )


def test_today_is_always_raw(fleet):
    org, agents = fleet
    usage_seal(org.pk, now=NOW)
    before = answers(org.pk, agents)["usage", "day"]
    save(
        run(
            org,
            at=NOW - dt.timedelta(minutes=1),
            agent_id=agents[0],
            cost="2",
            input_tokens=7,
            output_tokens=3,
        )
    )
    after = answers(org.pk, agents)["usage", "day"]
    assert after["total_executions"] == before["total_executions"] + 1
    assert after["total_cost_usd"] == before["total_cost_usd"] + 2
    assert after["total_tokens"] == before["total_tokens"] + 10


def test_sealing_is_idempotent_and_per_organization(fleet, other_org_owner):
    org, agents = fleet
    other = other_org_owner.organization
    other_before = raw_answers(other.pk, ["agent-" + "e" * 32])
    usage_seal(org.pk, now=NOW)
    rows = list(UsageDailyRollup.objects.order_by("pk").values())
    assert usage_seal(org.pk, now=NOW) == 0
    assert list(UsageDailyRollup.objects.order_by("pk").values()) == rows
    assert sealed_until(other) is None and not UsageDailyRollup.objects.filter(organization=other).exists()
    assert_same(answers(other.pk, ["agent-" + "e" * 32]), other_before)

    usage_seal(other.pk, now=NOW)
    assert_same(answers(other.pk, ["agent-" + "e" * 32]), other_before)
    year = answers(org.pk, agents)["usage", "year"]
    assert year["total_executions"] == Run.objects.filter(organization=org, created_at__year=2026).count()


def test_pruning_sealed_and_unsealed_runs_counts_each_run_once(fleet):
    """prune_runs folds only the runs not sealed yet: usage over the pruned days is unchanged
    whether the seal came before the prune, after it, or stops in the middle of it."""
    org, agents = fleet
    expected = raw_answers(org.pk, agents)  # the metric series reach 30 days back: none pruned
    usage_seal(org.pk, now=NOW, max_days=5)  # the oldest 5 days sealed (49 to 45 days ago), not the next
    age = (dt.datetime.now(dt.UTC) - TODAY).days + 40  # prunes what is older than 40 days at NOW
    call_command("prune_runs", "--older-than", f"{age}d", stdout=StringIO())
    assert not Run.objects.filter(organization=org, created_at__lt=TODAY - dt.timedelta(days=41)).exists()
    assert Run.objects.filter(organization=org, created_at__lt=TODAY - dt.timedelta(days=39)).exists()
    assert_same(answers(org.pk, agents), expected)
    assert live_run_count(org.pk) == Run.objects.filter(organization=org).count()
    usage_seal(org.pk, now=NOW)
    assert_same(answers(org.pk, agents), expected)
    assert live_run_count(org.pk) == Run.objects.filter(organization=org).count()


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("days", [None, 0, 10, 49])
def test_the_trace_count_equals_the_runs_listed(viewer_client, fleet, other_org_owner, days):
    """Unfiltered or filtered by dates only, the trace list counts whole sealed days from the
    rollup; otherwise it counts rows. Either way the count is the number of runs the list holds,
    for ranges inside one day, across the seal, over partial first and last days, after pruning."""
    org, agents = fleet
    if days is not None:
        usage_seal(org.pk, now=NOW, max_days=days)
    save(run(org, at=NOW + dt.timedelta(minutes=1), status="running", agent_id=agents[0]))
    if days == 10:  # some sealed days pruned: their runs leave the list and the rollup's count
        age = (dt.datetime.now(dt.UTC) - TODAY).days + 45
        call_command("prune_runs", "--older-than", f"{age}d", stdout=StringIO())
    runs = Run.objects.filter(organization=org)
    edge = TODAY - dt.timedelta(days=40)
    hour = dt.timedelta(hours=1)
    week_ago = TODAY - dt.timedelta(days=5)
    across, until = edge - dt.timedelta(days=3, hours=1), TODAY - 3 * hour
    ranges = {
        "": runs,
        f"start_date={week_ago.date()}": runs.filter(created_at__gte=week_ago),
        f"start_date={stamp(edge + 12 * hour)}": runs.filter(created_at__gte=edge + 12 * hour),
        f"end_date={edge.date()}": runs.filter(created_at__lt=edge + dt.timedelta(days=1)),
        f"end_date={stamp(edge)}": runs.filter(created_at__lte=edge),
        f"start_date={stamp(across)}&end_date={stamp(until)}": runs.filter(
            created_at__gte=across, created_at__lte=until
        ),
        f"start_date={stamp(edge + hour)}&end_date={stamp(edge + 23 * hour)}": runs.filter(
            created_at__gte=edge + hour, created_at__lte=edge + 23 * hour
        ),
        f"agent_id={agents[0]}": runs.filter(agent_id=agents[0]),
        "kind=orchestration": runs.filter(kind="orchestration"),
    }
    for query, rows in ranges.items():
        assert viewer_client.get(f"/api/traces?limit=5&{query}").json()["count"] == rows.count(), query
    assert live_run_count(other_org_owner.organization.pk) == Run.objects.exclude(organization=org).count()


def test_rollup_usage_command_seals_every_organization(fleet, other_org_owner):
    out = StringIO()
    call_command("rollup_usage", stdout=out)
    assert "Folded" in out.getvalue()
    for organization in (fleet[0], other_org_owner.organization):
        assert sealed_until(organization) == day_start(dt.datetime.now(dt.UTC) - SEAL_GRACE)


def test_rollup_usage_refuses_a_bad_max_days(db):
    with pytest.raises(CommandError):
        call_command("rollup_usage", "--max-days", "0", stdout=StringIO())


def test_the_api_reads_the_rollups(viewer_client, viewer):
    """Through the API at the real clock: yesterday sealed, today raw, the answer equals both."""
    now = dt.datetime.now(dt.UTC)
    org = viewer.organization
    agent = make_agent(org, name="Alpha")
    yesterday = day_start(now) - dt.timedelta(hours=1)
    save(
        run(org, at=yesterday, agent_id=agent.pk, cost="1.25", input_tokens=100, output_tokens=1),
        run(org, at=now - dt.timedelta(seconds=5), agent_id=agent.pk, cost="0.5", input_tokens=10),
    )
    before = viewer_client.get("/api/metrics?metric_name=cost_usd&period=30d").json()
    usage_seal(org.pk, now=now)
    assert UsageDailyRollup.objects.filter(organization=org).exists() == (
        yesterday < day_start(now - SEAL_GRACE)
    )
    assert viewer_client.get("/api/metrics?metric_name=cost_usd&period=30d").json() == before
    body = viewer_client.get(f"/api/usage/agents/{agent.pk}?period=year").json()
    if yesterday.year == now.year:
        assert body["total_executions"] == 2 and body["total_cost_usd"] == pytest.approx(1.75)


@pytest.mark.django_db(transaction=True)
async def test_a_server_process_rolls_up_closed_days_periodically(fleet, settings):
    import asyncio

    from asgiref.sync import sync_to_async

    from observability.rollup import usage_rollup_start

    settings.ROLLUP_EVERY_S = 0.05
    organization = fleet[0]
    assert await sync_to_async(sealed_until)(organization) is None
    task = usage_rollup_start()
    try:
        for _ in range(200):
            if await sync_to_async(sealed_until)(organization) is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await sync_to_async(sealed_until)(organization) == day_start(dt.datetime.now(dt.UTC) - SEAL_GRACE)
