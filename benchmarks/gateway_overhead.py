"""What the LLM gateway adds around a model call, and whether calls through it run concurrently.

1. Overhead: the same zero-latency `mock` request sent `--calls` times straight to the adapter and
   through `StudioGateway.complete` (provider config lookup, budget reservation against the
   provider's and the agent's monthly budgets, the adapter, pricing, settlement, the llm span).
   Prints the median and p99 of both and the difference, plus the database queries per call.
2. Concurrency: waves of `--concurrent` calls to the fake OpenAI-compatible server of the tests
   (in a process of its own) answering after `--latency-ms`: straight to the adapter, then through
   the gateway; the difference is what the gateway adds under concurrency.

Django runs in this process on a fresh database: a temporary SQLite file, or the PostgreSQL
database named by --database-url (dropped and created again).

    .venv/bin/python benchmarks/gateway_overhead.py [--database-url postgres://postgres@127.0.0.1:5432/bench_gateway]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

PROMPT = "Summarise the customer's refund request in one sentence, and say how urgent it is."


def django_in_process(database_url: str | None) -> str:
    """Sets Django up in this process on a fresh, migrated database; returns its label."""
    from common import recreate_postgres_database

    url = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='studio-bench-')}/bench.sqlite3"
    if url.startswith("postgres"):
        recreate_postgres_database(url)
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="studio.settings",
        STUDIO_LOG_LEVEL="WARNING",
        STUDIO_ALLOW_PRIVATE_PROVIDER_URLS="1",
        # The benchmarks start up to 200 runs of one organization at once, over the default cap.
        STUDIO_MAX_ACTIVE_RUNS_PER_ORG="1000",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(label: str, samples_ms: list[float]) -> str:
    median, p99 = statistics.median(samples_ms), percentile(samples_ms, 0.99)
    return f"{label:<44} median {median:7.3f} ms   p99 {p99:7.3f} ms   n={len(samples_ms)}"


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def queries_of(call: Callable[[], Awaitable[object]]) -> int:
    """How many queries one call makes (the ORM runs in asgiref's one sync thread)."""
    from asgiref.sync import sync_to_async
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    capture = await sync_to_async(lambda: CaptureQueriesContext(connection).__enter__())()
    await call()
    await sync_to_async(capture.__exit__)(None, None, None)
    return capture.final_queries - capture.initial_queries


def tenant():
    """An organization, a member, and a run to record calls on."""
    from tests.accounts.factories import make_organization, make_user
    from tests.observability.factories import queued_run

    organization = make_organization(name="Bench")
    user = make_user(organization, role="member")
    run = queued_run(organization_id=organization.pk, user_id=user.pk, kind="agent_test", input={})
    return organization, run


async def overhead(calls: int) -> None:
    from asgiref.sync import sync_to_async

    from observability.recorder import RunRecorder
    from providers.gateway import StudioGateway
    from providers.llm.registry import create_adapter
    from providers.llm.types import CompletionRequest, LLMCall, Message, ProviderSettings
    from tests.providers.factories import make_provider_config

    organization, run = await sync_to_async(tenant)()
    # A mock account with a budget, so the provider budget is reserved and settled like a real one.
    await sync_to_async(make_provider_config)(
        organization, provider="mock", api_key="", budget="1000", is_default=True
    )
    request = CompletionRequest(
        messages=(Message("system", "You are a support agent."), Message("user", PROMPT)),
        model="mock-1",
        max_tokens=512,
        provider_options={"latency_ms": 0},
    )
    call = LLMCall(
        request, provider_kind="mock", agent_id="agent-bench", agent_budget_limit_usd=Decimal("1000")
    )
    adapter = create_adapter(ProviderSettings(kind="mock"))
    gateway = StudioGateway(run=run, recorder=RunRecorder(run))
    await timed(lambda: gateway.complete(call), 50)  # warm-up: connections, counters, caches
    bare = await timed(lambda: adapter.complete(request), calls)
    through = await timed(lambda: gateway.complete(call), calls)
    print(line("mock adapter alone", bare))
    print(line("through the gateway", through))
    print(
        f"{'gateway overhead':<44} median {statistics.median(through) - statistics.median(bare):7.3f} ms"
        f"   p99 {percentile(through, 0.99) - percentile(bare, 0.99):7.3f} ms"
    )
    print(f"{'queries per gateway call':<44} {await queries_of(lambda: gateway.complete(call))}")


async def concurrency(concurrent: int, latency_ms: float, rounds: int) -> None:
    from asgiref.sync import sync_to_async
    from common import FakeOpenAIProcess

    from observability.recorder import RunRecorder
    from providers.gateway import StudioGateway, provider_settings
    from providers.llm.clients import close_clients
    from providers.llm.registry import create_adapter
    from providers.llm.types import CompletionRequest, LLMCall, Message
    from tests.providers.factories import make_provider_config

    organization, run = await sync_to_async(tenant)()
    with FakeOpenAIProcess(latency_s=latency_ms / 1000) as server:
        config = await sync_to_async(make_provider_config)(
            organization, api_key=server.api_key, api_base_url=server.base_url, budget="1000"
        )
        request = CompletionRequest(
            messages=(Message("user", PROMPT),), model="gpt-4o-mini", max_tokens=256, max_retries=0
        )
        call = LLMCall(
            request, provider_kind="openai_compatible", provider_id=config.pk, agent_id="agent-bench"
        )
        gateway = StudioGateway(run=run, recorder=RunRecorder(run))
        adapter = create_adapter(await sync_to_async(provider_settings)(config))

        async def wave(send: Callable[[], Awaitable[object]]) -> float:
            started = time.perf_counter()
            await asyncio.gather(*(send() for _ in range(concurrent)))
            return time.perf_counter() - started

        try:
            await wave(lambda: gateway.complete(call))  # warm-up: opens the kept-alive connections
            bare = [await wave(lambda: adapter.complete(request)) for _ in range(rounds)]
            walls = [await wave(lambda: gateway.complete(call)) for _ in range(rounds)]
        finally:
            await close_clients()
    label = f"{concurrent} concurrent calls, {latency_ms:g} ms server latency"
    print(wave_line(f"{label}: adapter alone", bare, concurrent))
    print(wave_line(f"{label}: through the gateway", walls, concurrent))


def wave_line(label: str, walls_s: list[float], size: int) -> str:
    median = statistics.median(walls_s) * 1000
    return (
        f"{label:<64} wall median {median:7.1f} ms (min {min(walls_s) * 1000:.1f}, "
        f"max {max(walls_s) * 1000:.1f}), {size / statistics.median(walls_s):6.1f} calls/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgres://... (recreated); default: a fresh SQLite file")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    label = django_in_process(args.database_url)
    print(f"## {label}")
    asyncio.run(overhead(args.calls))
    asyncio.run(concurrency(args.concurrent, args.latency_ms, args.rounds))


if __name__ == "__main__":
    main()
