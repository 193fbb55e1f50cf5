"""Usage, metrics, traces and runtime endpoints over a million runs on PostgreSQL.

Seeds one organization with `--runs` runs (one llm span each) spread evenly over `--days` days
across `--agents` agents, plus a small second organization, with COPY; then times the dashboard
endpoints in-process through Django's test client (the median of `--calls` calls after a warm-up)
and prints each one's query count. Optionally times `prune_runs` on the seeded data at the end.

    .venv/bin/python benchmarks/usage_at_scale.py \\
        [--database-url postgres://postgres@127.0.0.1:5432/bench_usage] [--runs 1000000] \\
        [--agents 50] [--days 90] [--calls 9] [--reuse] [--only TEXT] [--no-rollup] [--prune 60d]

--reuse keeps a database seeded by an earlier invocation (migrations are still applied).
Before measuring, `rollup_usage` folds every closed day into the daily rollups, as its hourly
schedule would have (`--no-rollup` measures the raw reads; trees without the command skip it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import os
import random
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

USAGE_PERIODS = ("day", "week", "month", "year")
METRIC_NAMES = ("executions", "errors", "cost_usd", "tokens", "latency_p50_ms", "latency_p95_ms")
METRIC_PERIODS = ("1h", "24h", "7d", "30d")
# Every usage, metrics, traces and runtime endpoint, every period.
ENDPOINTS = (
    *(f"/api/usage?period={period}" for period in USAGE_PERIODS),
    *(f"/api/usage/agents/{{agent}}?period={period}" for period in USAGE_PERIODS),
    *(
        f"/api/metrics?metric_name={metric}&period={period}"
        for metric in METRIC_NAMES
        for period in METRIC_PERIODS
    ),
    "/api/traces?limit=50",
    "/api/traces?limit=50&agent_id={agent}",
    "/api/traces?limit=50&status=failed",
    "/api/traces?limit=50&kind=orchestration",
    "/api/traces?limit=50&start_date={week_ago}",
    "/api/traces?limit=50&start_date={year_start}",
    "/api/traces/{run}",
    "/api/runtime/status",
    "/api/runtime/agents",
    "/api/runtime/agents?limit=50",
    "/api/runtime/metrics",
)
CHUNK = 50_000
MODEL, PRICE_IN, PRICE_OUT = "gpt-4o-mini", Decimal("0.15"), Decimal("0.60")  # USD per million tokens


def _setup(database_url: str, reuse: bool) -> None:
    from common import recreate_postgres_database

    if not reuse:
        recreate_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _copy(table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    from django.db import connection

    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        copy.write("".join(lines))


RUN_COLUMNS = (
    "id",
    "organization_id",
    "user_id",
    "kind",
    "agent_id",
    "orchestration_id",
    "deployment_id",
    "status",
    "input",
    "output",
    "error",
    "trace_id",
    "created_at",
    "started_at",
    "completed_at",
    "heartbeat_at",
    "execution_time_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attempts",
)
SPAN_COLUMNS = (
    "id",
    "run_id",
    "organization_id",
    "parent_id",
    "kind",
    "name",
    "agent_id",
    "provider_id",
    "provider_kind",
    "model",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attributes",
    "error",
    "budget_holds",
    "call_key",
)


def _seed_runs(organization_id: str, user_id: str, agent_ids: list[str], *, runs: int, days: int) -> None:
    """Runs in time order (as a ledger fills up), each with one llm span, written with COPY."""
    rng = random.Random(organization_id)  # reproducible per organization, distinct across them
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days)
    step = dt.timedelta(days=days) / runs
    orchestrations = [f"orch-{uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(5)]
    deployments = [f"deploy-{uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(10)]
    started = time.perf_counter()
    for first in range(0, runs, CHUNK):
        run_lines, span_lines = [], []
        for index in range(first, min(first + CHUNK, runs)):
            created = start + step * index
            roll = rng.random()
            agent_id = rng.choice(agent_ids)
            kind, orchestration_id, deployment_id = "agent_test", "", ""
            if roll < 0.05:
                kind, agent_id, orchestration_id = "orchestration", "", rng.choice(orchestrations)
            elif roll < 0.40:
                kind, deployment_id = "deployment", rng.choice(deployments)
            fresh = now - created < dt.timedelta(minutes=2)
            outcome = rng.random()
            status = (
                ("running" if outcome < 0.5 else "queued")
                if fresh
                else "failed"
                if outcome < 0.05
                else "cancelled"
                if outcome < 0.06
                else "completed"
            )
            tokens_in, tokens_out = rng.randint(50, 2000), rng.randint(10, 800)
            cost = (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1_000_000
            elapsed = int(min(60_000, rng.lognormvariate(math.log(800), 0.6)))
            finished = status in ("completed", "failed", "cancelled")
            ended = created + dt.timedelta(milliseconds=elapsed)
            run_id = f"run-{uuid.UUID(int=rng.getrandbits(128)).hex}"
            error = '{"code": "provider_error", "message": "upstream 500"}' if status == "failed" else r"\N"
            run_lines.append(
                "\t".join(
                    (
                        run_id,
                        organization_id,
                        user_id,
                        kind,
                        agent_id,
                        orchestration_id,
                        deployment_id,
                        status,
                        '{"inquiry": "Where is my order?"}',
                        '{"response": "On its way."}' if status == "completed" else r"\N",
                        error,
                        uuid.UUID(int=rng.getrandbits(128)).hex,
                        _iso(created),
                        _iso(created),
                        _iso(ended) if finished else r"\N",
                        _iso(ended if finished else now),
                        str(elapsed) if finished else r"\N",
                        str(tokens_in),
                        str(tokens_out),
                        f"{cost:.10f}",
                        "1",
                    )
                )
                + "\n"
            )
            span_lines.append(
                "\t".join(
                    (
                        f"span-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                        run_id,
                        organization_id,
                        r"\N",
                        "llm",
                        f"openai:{MODEL}",
                        agent_id,
                        "",
                        "openai",
                        MODEL,
                        status if finished else "running",
                        _iso(created),
                        _iso(ended) if finished else r"\N",
                        str(elapsed) if finished else r"\N",
                        str(tokens_in),
                        str(tokens_out),
                        f"{cost:.10f}",
                        '{"finish_reason": "stop"}',
                        "",
                        "[]",
                        "",
                    )
                )
                + "\n"
            )
        _copy("observability_run", RUN_COLUMNS, run_lines)
        _copy("observability_span", SPAN_COLUMNS, span_lines)
        done = min(first + CHUNK, runs)
        print(f"  {done:>9,} runs + spans  {time.perf_counter() - started:6.1f} s", flush=True)


def seed(*, runs: int, agents: int, days: int) -> None:
    from django.db import connection

    from accounts.models import Organization, User
    from agents.models import Agent
    from providers.budgets import current_month
    from providers.models import BudgetCounter

    started = time.perf_counter()
    big = Organization.objects.create(name="Scale", slug="scale")
    small = Organization.objects.create(name="Neighbour", slug="neighbour")
    owner = User.objects.create_user(
        "scale@example.com", "bench-password-123", organization=big, role="owner"
    )
    neighbour = User.objects.create_user(
        "n@example.com", "bench-password-123", organization=small, role="owner"
    )
    fleet = Agent.objects.bulk_create(
        Agent(
            organization=big,
            name=f"Agent {n:02}",
            config_yaml="#",
            config={"config": {"budget_limit_usd": 50}},
        )
        for n in range(agents)
    )
    theirs = Agent.objects.create(organization=small, name="Theirs", config_yaml="#", config={})
    BudgetCounter.objects.bulk_create(
        BudgetCounter(organization=big, subject=agent.pk, month=current_month(), spent_usd=Decimal("12.5"))
        for agent in fleet
    )
    print(f"seeding {runs:,} runs over {days} days across {agents} agents (COPY)")
    _seed_runs(big.pk, owner.pk, [agent.pk for agent in fleet], runs=runs, days=days)
    _seed_runs(small.pk, neighbour.pk, [theirs.pk], runs=max(1, runs // 100), days=days)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE observability_run")
        cursor.execute("VACUUM ANALYZE observability_span")
    print(f"seeded in {time.perf_counter() - started:.0f} s (with VACUUM ANALYZE)")


def rollup() -> None:
    """Seals every closed day, as the scheduled `rollup_usage` would have (not in trees without it)."""
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command("rollup_usage", stdout=out)
    except CommandError as error:
        print(f"\nno rollup: {error}")
        return
    summary = out.getvalue().strip().splitlines()[-1]
    print(f"\nrollup_usage: {time.perf_counter() - started:.1f} s ({summary})")
    from django.db import connection

    with connection.cursor() as cursor:  # as autovacuum does after a table's first fill
        cursor.execute("ANALYZE observability_usagedailyrollup")
        cursor.execute("ANALYZE observability_rundailyrollup")


def measure(calls: int, only: str | None = None) -> None:
    from asgiref.sync import async_to_sync
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from accounts.services import tokens_for
    from agents.breakers import POLICY, CacheCircuitBreaker
    from agents.models import Agent
    from observability.models import Run

    owner = User.objects.get(email="scale@example.com")
    agent = Agent.objects.filter(organization_id=owner.organization_id).order_by("name").first()
    run = Run.objects.filter(organization_id=owner.organization_id).order_by("-created_at").first()
    breaker = CacheCircuitBreaker()
    for _ in range(POLICY.failure_threshold):  # one open breaker, as in a real fleet
        async_to_sync(breaker.record)(agent.pk, success=False)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tokens_for(owner)['access']}", HTTP_HOST="127.0.0.1")
    total = Run.objects.count()
    print(f"\n{total:,} runs in the database; median of {calls} calls after one warm-up (ms)\n")
    print(f"{'endpoint':<56} {'median':>8} {'min':>8} {'max':>8} {'queries':>8}")
    today = dt.datetime.now(dt.UTC).date()
    week_ago, year_start = (today - dt.timedelta(days=7)).isoformat(), f"{today.year}-01-01"
    for template in ENDPOINTS:
        if only and only not in template:
            continue
        path = template.format(agent=agent.pk, run=run.pk, week_ago=week_ago, year_start=year_start)
        response = client.get(path)
        assert response.status_code == 200, (path, response.content[:300])
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        print(
            f"{template:<56} {statistics.median(timings):8.1f} {min(timings):8.1f} {max(timings):8.1f}"
            f" {len(queries.captured_queries):8d}"
        )


def prune(older_than: str) -> None:
    """Times prune_runs and checks that usage over the pruned period is unchanged."""
    from django.core.management import call_command

    from accounts.models import Organization
    from observability.models import Run
    from observability.usage import usage_summary

    organization_id = Organization.objects.get(slug="scale").pk
    before_usage = usage_summary(organization_id=organization_id, period="year")
    before = Run.objects.count()
    started = time.perf_counter()
    out = io.StringIO()
    call_command("prune_runs", "--older-than", older_than, "--batch-size", "2000", stdout=out)
    seconds = time.perf_counter() - started
    pruned = before - Run.objects.count()
    after_usage = usage_summary(organization_id=organization_id, period="year")
    same = all(
        before_usage[key] == after_usage[key] for key in ("total_executions", "total_cost_usd", "by_day")
    )
    print(f"\nprune_runs --older-than {older_than} --batch-size 2000: {pruned:,} runs in {seconds:.1f} s")
    print(f"  = {pruned / seconds:,.0f} runs/s; usage of the year before == after: {same}")
    print(f"  ({before_usage['total_executions']:,} runs, ${before_usage['total_cost_usd']:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_usage")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database of an earlier run")
    parser.add_argument("--only", help="measure only the endpoints containing this text")
    parser.add_argument("--no-rollup", action="store_true", help="measure without running rollup_usage first")
    parser.add_argument(
        "--prune", metavar="AGE", help="finally time prune_runs --older-than AGE (destructive)"
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("this benchmark seeds PostgreSQL with COPY; pass a postgres:// URL")
    _setup(args.database_url, args.reuse)
    if not args.reuse:
        seed(runs=args.runs, agents=args.agents, days=args.days)
    if not args.no_rollup:
        rollup()
    measure(args.calls, args.only)
    if args.prune:
        prune(args.prune)
        measure(args.calls, args.only)


if __name__ == "__main__":
    main()
