"""CPU per deployment call of the pieces around the ledger that are kept between calls or sent in
fewer round trips, each next to the way it was done before, in one process on PostgreSQL + Redis:

- the provider config lookup: a query and the key's decryption (`_provider_load`) against the
  process's entry under the organization's stamp (`_provider`, providers/config_cache.py);
- the rate limit's window hit: the cache API (add, then Django's incr: three commands) against the
  Lua script (one round trip);
- the circuit breaker of the call's agent: read in `allow`, read and write in `record` before,
  against the read of `allow` alone (CacheCircuitBreaker), and that read on a worker thread (Django's
  cache through `sync_to_async`, until 9 December) against async Redis on the loop;
- a call's admission and rate limit: the key's stamp read and the window hit on a worker thread
  (`deployment_admit_and_begin` through `sync_to_async`), against the stamp checked inside the hit's
  script from the loop (`deployment_admit_and_begin_async`, one round trip, no thread);
- the four events of a call published to a run nobody follows: group_send each against the
  group's member count first (observability/events.py);
- a call's events as its ledger writes store them: a member count per event against one per
  write, none for the write that stores the run (observability/events.py, `publish_run_events`).

This process's CPU time (`time.process_time`, every thread: a `sync_to_async` hops to asgiref's
thread) of `--calls` repetitions after a warm-up, so a busy machine inflates the figures less than
wall time would (Redis's and PostgreSQL's own CPU is not counted).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/call_pieces.py \\
        --database-url postgres://postgres@127.0.0.1:5432/bench_pieces
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

EVENTS_PER_CALL = 4


def cpu_ms(action: Callable[[], object], calls: int) -> float:
    for _ in range(max(10, calls // 10)):
        action()
    started = time.process_time()
    for _ in range(calls):
        action()
    return (time.process_time() - started) * 1000 / calls


def provider_rows(calls: int) -> list[tuple[str, float, float]]:
    from gateway_overhead import tenant

    from observability.recorder import RunRecorder
    from providers.gateway import StudioGateway
    from providers.llm.types import CompletionRequest, LLMCall, Message
    from tests.providers.factories import make_provider_config

    organization, run = tenant()
    make_provider_config(organization, api_base_url="http://127.0.0.1:9/v1", is_default=True)
    gateway = StudioGateway(run=run, recorder=RunRecorder(run))
    request = CompletionRequest(messages=(Message(role="user", content="Hi"),), model="gpt-4o-mini")
    call = LLMCall(request=request, provider_kind="openai_compatible")
    before = cpu_ms(lambda: gateway._provider_load(call), calls)
    after = cpu_ms(lambda: gateway._provider(call), calls)
    return [("provider config lookup", before, after)]


def rate_limit_rows(calls: int) -> list[tuple[str, float, float]]:
    from django.core.cache import caches

    from studio.api import ratelimit

    backend = caches["default"]
    before = cpu_ms(lambda: ratelimit._hit("bench:pieces:before", 61), calls)
    after = cpu_ms(lambda: ratelimit._redis_hit(backend, "bench:pieces:after", 61), calls)
    return [("rate limit window hit", before, after)]


def on_one_loop(
    loop: asyncio.AbstractEventLoop, action: Callable[[], Awaitable[object]]
) -> Callable[[], object]:
    """`action` awaited on `loop`, the one event loop of a server process (its Redis client kept)."""
    return lambda: loop.run_until_complete(action())


def breaker_rows(calls: int) -> list[tuple[str, float, float]]:
    from dataclasses import asdict

    from asgiref.sync import sync_to_async
    from django.core.cache import cache

    from agents import breakers
    from agents.runtime.breaker import BreakerSnapshot

    agent = "agent-bench-pieces"

    def load_before() -> BreakerSnapshot:  # the read as it was made on a worker thread
        stored = cache.get(breakers._key(agent))
        return BreakerSnapshot(**stored) if stored else BreakerSnapshot()

    def record_before(success: bool) -> None:  # a read, then the new snapshot written
        load_before()
        cache.set(breakers._key(agent), asdict(BreakerSnapshot()), timeout=breakers.SNAPSHOT_TTL_S)

    async def two_reads_and_a_write() -> None:  # what allow + record(success) sent before 8 December
        await sync_to_async(load_before)()
        await sync_to_async(record_before)(True)

    async def one_read_on_a_thread() -> None:  # allow's read on a worker thread (8 December)
        await sync_to_async(load_before)()

    async def now() -> None:
        breaker = breakers.CacheCircuitBreaker()
        await breaker.allow(agent)
        await breaker.record(agent, success=True)

    loop = asyncio.new_event_loop()
    try:
        earliest = cpu_ms(on_one_loop(loop, two_reads_and_a_write), calls)
        before = cpu_ms(on_one_loop(loop, one_read_on_a_thread), calls)
        after = cpu_ms(on_one_loop(loop, now), calls)
    finally:
        loop.close()
    return [
        ("circuit breaker (allow + record)", earliest, before),
        ("breaker read: thread / loop", before, after),
    ]


def admission_rows(calls: int) -> list[tuple[str, float, float]]:
    from asgiref.sync import sync_to_async

    from deployments.calls import deployment_admit_and_begin, deployment_admit_and_begin_async
    from tests.accounts.factories import make_organization, make_user
    from tests.deployments.helpers import INPUTS, deploy

    admin = make_user(make_organization(name="Bench admission"), role="admin")
    _, key = deploy(admin, name="bench-pieces", rate_limit_per_minute=10**9)
    call = {"name": "bench-pieces", "key": key, "channel": "api", "inputs": INPUTS}

    async def on_a_thread() -> None:
        await sync_to_async(deployment_admit_and_begin)(**call)

    async def on_the_loop() -> None:
        await deployment_admit_and_begin_async(**call)

    loop = asyncio.new_event_loop()
    try:
        before = cpu_ms(on_one_loop(loop, on_a_thread), calls)
        after = cpu_ms(on_one_loop(loop, on_the_loop), calls)
    finally:
        loop.close()
    return [("admission + rate limit: thread / loop", before, after)]


def event_rows(calls: int) -> list[tuple[str, float, float]]:
    from channels.layers import get_channel_layer

    from observability.events import publish_run_event, run_group

    layer = get_channel_layer()
    event = {"run_id": "run-bench-pieces", "seq": 1, "type": "llm.delta", "data": {"text": "x"}}
    loop = asyncio.new_event_loop()

    async def earlier() -> None:
        for _ in range(EVENTS_PER_CALL):
            await layer.group_send(run_group("run-bench-pieces"), {"type": "run.event", "event": event})

    async def now() -> None:
        for _ in range(EVENTS_PER_CALL):
            await publish_run_event("run-bench-pieces", event)

    try:
        before = cpu_ms(lambda: loop.run_until_complete(earlier()), calls)
        after = cpu_ms(lambda: loop.run_until_complete(now()), calls)
    finally:
        loop.close()
    return [(f"{EVENTS_PER_CALL} events to nobody following", before, after)]


# A deployment call's events by the ledger write that stores them: run.started with the run's start
# (never published: no one can follow a run before its row is stored), agent.started with the
# reservation, agent.completed and run.completed with the run's end.
CALL_WRITES = (("run.started",), ("agent.started",), ("agent.completed", "run.completed"))


def event_write_rows(calls: int) -> list[tuple[str, float, float]]:
    from observability.events import publish_run_event, publish_run_events

    run_id = "run-bench-pieces"
    seqs = iter(range(1, 100))
    writes = [
        [{"run_id": run_id, "seq": next(seqs), "type": kind, "data": {}} for kind in kinds]
        for kinds in CALL_WRITES
    ]
    loop = asyncio.new_event_loop()

    async def per_event() -> None:  # a check per event (before 9 December)
        for events in writes:
            for event in events:
                await publish_run_event(run_id, event)

    async def per_write() -> None:  # a check per write, none for the run's first
        for events in writes[1:]:
            await publish_run_events(run_id, events)

    try:
        before = cpu_ms(lambda: loop.run_until_complete(per_event()), calls)
        after = cpu_ms(lambda: loop.run_until_complete(per_write()), calls)
    finally:
        loop.close()
    return [("a call's events: check per event/write", before, after)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("set REDIS_URL: the pieces measured are Redis round trips")
    from gateway_overhead import django_in_process

    database = django_in_process(args.database_url)
    print(f"{database} + Redis, CPU ms per call of this process, {args.calls} calls after a warm-up")
    print(f"{'piece':<40} {'before':>8} {'after':>8}")
    for rows in (provider_rows, rate_limit_rows, breaker_rows, admission_rows, event_rows, event_write_rows):
        for name, before, after in rows(args.calls):
            print(f"{name:<40} {before:8.3f} {after:8.3f}", flush=True)


if __name__ == "__main__":
    main()
