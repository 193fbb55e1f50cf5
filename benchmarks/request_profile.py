"""In-process CPU per request, and its profile, of the read endpoints of `request_cost.py`.

No server and no load generator: requests go straight into `studio.asgi.application` on one event
loop, one after another, as a server would send them (each in its own task and context), so the
figure is the request path's own cost. `--profile` prints a cProfile profile of the timed requests
in CPU time (`time.thread_time`), the event loop's thread and the request threads together.

    .venv/bin/python -m benchmarks.request_profile
    .venv/bin/python -m benchmarks.request_profile --database-url postgres://postgres@127.0.0.1:5432/bench_profile
    .venv/bin/python -m benchmarks.request_profile --path /api/auth/me --profile
    .venv/bin/python -m benchmarks.request_profile --path '/api/agents?limit=20' --pieces

cProfile's cost per function call inflates code made of many small calls (rendering, the ORM
compiler) far more than code that runs in C (psycopg, json): `--pieces` times the 20-agent list's
parts on their own instead, without a profiler.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures.thread
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time

from tests.asgi_requests import asgi_request, http_scope

PATHS = ["/bench/bare", "/api/health/live", "/api/auth/me", "/api/agents?limit=20"]
AGENTS = 20


def _configure(database_url: str | None, tmp: str) -> None:
    url = database_url or f"sqlite:///{tmp}/profile.sqlite3"
    if url.startswith("postgres"):
        from benchmarks.common import recreate_postgres_database

        recreate_postgres_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")


def _seed() -> str:
    """An organization with AGENTS agents; returns its owner's access token."""
    from django.core.management import call_command

    from accounts.services import organization_register, tokens_for
    from agents.services import agent_create
    from benchmarks.deployment_endpoint import AGENT_YAML, PASSWORD

    call_command("migrate", verbosity=0)
    owner = organization_register(org_name="Profile", email="profile@example.com", password=PASSWORD)
    for i in range(AGENTS):
        agent_create(user=owner, name=f"Agent {i}", config_yaml=AGENT_YAML)
    return tokens_for(owner)["access"]


async def _cpu_per_request(app, scope: dict, count: int) -> list[float]:
    """CPU ms of each of `count` requests, each in a task of its own (as a server runs them)."""
    costs = []
    for _ in range(count):
        start = time.process_time()
        sent = await asyncio.get_running_loop().create_task(asgi_request(app, scope))
        status = sent[0]["status"]
        costs.append((time.process_time() - start) * 1000)
        if status != 200:
            raise RuntimeError(f"{scope['path']} answered {status}")
    return costs


@contextlib.contextmanager
def _profiled(enabled: bool):
    """CPU-time profiles of the loop's thread and of the work it hands to threads (the request's
    sync work runs on a worker thread: a profiler of one thread would miss it)."""
    if not enabled:
        yield []
        return
    loop_profile, thread_profile = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
    work_item = concurrent.futures.thread._WorkItem
    run = work_item.run

    def profiled_run(self):
        thread_profile.enable()  # one request at a time: one worker thread at a time
        try:
            return run(self)
        finally:
            thread_profile.disable()

    work_item.run = profiled_run
    loop_profile.enable()
    try:
        yield [loop_profile, thread_profile]
    finally:
        loop_profile.disable()
        work_item.run = run


def _pieces(count: int) -> None:
    """CPU ms of the parts of `GET /api/agents?limit=20`, each on its own (median of 15 rounds)."""
    from rest_framework.renderers import JSONRenderer

    from agents.api.serializers import AgentReadSerializer
    from agents.models import Agent
    from studio.api.pagination import page_with_count
    from studio.api.renderers import StudioJSONRenderer

    organization_id = Agent.objects.values_list("organization_id", flat=True).first()
    rows, _ = page_with_count(Agent.objects.filter(organization_id=organization_id), start=0, limit=20)
    body = {"count": len(rows), "page": 1, "limit": 20, "results": AgentReadSerializer(rows, many=True).data}
    pieces = {
        "the page with its count (one query, 20 model instances)": lambda: page_with_count(
            Agent.objects.filter(organization_id=organization_id), start=0, limit=20
        ),
        "rendering the 20 rows (AgentReadSerializer, many=True)": lambda: (
            AgentReadSerializer(rows, many=True).data
        ),
        f"JSON of the page ({len(JSONRenderer().render(body))} bytes, DRF's JSONRenderer)": lambda: (
            JSONRenderer().render(body)
        ),
        "JSON of the page (StudioJSONRenderer, the API's)": lambda: StudioJSONRenderer().render(body),
    }
    rounds = 15
    for label, piece in pieces.items():
        costs = []
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(max(1, count // rounds)):
                piece()
            costs.append((time.process_time() - start) * 1000 / max(1, count // rounds))
        print(f"  {label:<62} median {statistics.median(costs):6.3f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--path", action="append", help=f"default: {' '.join(PATHS)}")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile profile (CPU time)")
    parser.add_argument("--top", type=int, default=60, help="functions in the profile")
    parser.add_argument("--pieces", action="store_true", help="also time the agent list's parts alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _configure(args.database_url, tmp)
        sys.path.insert(0, os.getcwd())
        from studio.asgi import application

        token = _seed()
        loop = asyncio.new_event_loop()
        for path in args.path or PATHS:
            scope = http_scope(path, headers={"authorization": f"Bearer {token}"})
            loop.run_until_complete(_cpu_per_request(application, scope, 200))  # warm-up
            with _profiled(args.profile) as profiles:
                costs = loop.run_until_complete(_cpu_per_request(application, scope, args.requests))
            print(
                f"{path:<28} median {statistics.median(costs):6.3f} ms  "
                f"mean {statistics.fmean(costs):6.3f} ms  CPU per request, n={len(costs)}",
                flush=True,
            )
            if profiles:
                stats = pstats.Stats(profiles[0])
                for profile in profiles[1:]:
                    stats.add(profile)
                stats.sort_stats("cumulative").print_stats(args.top)
        loop.close()
        if args.pieces:
            _pieces(args.requests)


if __name__ == "__main__":
    main()
