"""What the orchestration engine costs per agent step, whether independent agents overlap, and how
fast an orchestration's events reach a WebSocket client.

1. Engine overhead (in this process): recorded orchestration runs (`orchestration_run_start`) of
   `sequential` and `parallel` patterns of 2, 5 and 10 agents on the `mock` provider at zero
   latency, next to a single recorded agent run (the agent runtime alone). Per run and per agent
   step, median and p99; what the engine adds per step is the per-step time minus the single agent
   run.
2. Concurrency: a `parallel` pattern of 10 agents whose mock calls take `--latency-ms` (wall time
   should be close to one call's latency, not ten).
3. Events per second to a WebSocket client (a daphne server on its own fresh database): a parallel
   pattern of 10 agents streaming their answers as `llm.delta` events at zero latency, executed on
   `/api/orchestrations/{id}/stream`, and the same through a sequential pattern.

    .venv/bin/python benchmarks/orchestration_engine.py \\
        [--database-url postgres://postgres@127.0.0.1:5432/bench_engine] \\
        [--redis-url redis://127.0.0.1:6379/0]

With --database-url the in-process part uses that database and daphne the same name + "_ws" (both
dropped and created again); without it, two fresh SQLite files. --redis-url gives the daphne server
the Redis channel layer (default: the in-memory layer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from agent_runtime import agent_yaml, events_line, one_run, post, register, saved_agent, stream_events  # noqa: E402
from gateway_overhead import django_in_process, line, tenant, wave_line  # noqa: E402

SIZES = (2, 5, 10)


def orchestration(organization, pattern: str, agents) -> object:
    from orchestrations.models import Orchestration
    from orchestrations.patterns import validate_pattern_config

    return Orchestration.objects.create(
        organization=organization,
        name=f"{pattern} of {len(agents)}",
        pattern=pattern,
        config=validate_pattern_config(pattern, {}, agent_count=len(agents)),
        agent_ids=[agent.pk for agent in agents],
    )


def team(organization, size: int, *, latency_ms: int = 0) -> list:
    """`size` support agents; each one's inputs match the previous one's outputs by name."""
    yaml_text = agent_yaml(latency_ms=latency_ms)
    return [saved_agent(organization, yaml_text, name=f"Agent {n}") for n in range(size)]


async def orchestration_run(orchestration_obj, user_id) -> None:
    from asgiref.sync import sync_to_async

    from orchestrations.runs import orchestration_draft, orchestration_run_start

    inputs = {"inquiry": "Where is my refund for order 42?"}
    draft, spec = await sync_to_async(orchestration_draft)(
        user=None, orchestration=orchestration_obj, inputs=inputs
    )
    await orchestration_run_start(draft, spec)


async def timed_runs(call, count: int) -> list[float]:
    for _ in range(min(20, count)):  # warm-up
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def agent_step(organization, user_id, runs: int) -> float:
    """Median ms of one agent execution inside an existing run (agent span, events, gateway): what
    every pattern step costs before the engine adds anything."""
    from asgiref.sync import sync_to_async

    from agents.breakers import CacheCircuitBreaker
    from agents.runs import agent_spec
    from agents.runtime.runner import bind_run_agent
    from observability.recorder import RunRecorder
    from providers.gateway import StudioGateway
    from tests.observability.factories import queued_run

    agent = (await sync_to_async(team)(organization, 1))[0]
    spec = await sync_to_async(agent_spec)(agent)
    run = await sync_to_async(queued_run)(
        organization_id=organization.pk, user_id=user_id, kind="orchestration", input={}
    )
    recorder = RunRecorder(run)
    run_agent = bind_run_agent(
        gateway=StudioGateway(run=run, recorder=recorder), recorder=recorder, breaker=CacheCircuitBreaker()
    )
    inputs = {"inquiry": "Where is my refund for order 42?"}
    samples = await timed_runs(lambda: run_agent(spec, inputs, None), runs)
    print(line("one agent execution inside a run", samples))
    return statistics.median(samples)


async def engine_overhead(runs: int) -> None:
    from asgiref.sync import sync_to_async

    from agents.runs import agent_spec

    organization, run = await sync_to_async(tenant)()
    single = (await sync_to_async(team)(organization, 1))[0]
    spec = await sync_to_async(agent_spec)(single)
    print(
        line(
            "one recorded agent run (no engine)",
            await timed_runs(lambda: one_run(single, spec, run.user_id), runs),
        )
    )
    step = await agent_step(organization, run.user_id, runs)
    for pattern in ("sequential", "parallel"):
        medians = {}
        for size in SIZES:
            agents = await sync_to_async(team)(organization, size)
            target = await sync_to_async(orchestration)(organization, pattern, agents)
            samples = await timed_runs(
                lambda t=target: orchestration_run(t, run.user_id), max(runs // size, 30)
            )
            medians[size] = statistics.median(samples)
            print(line(f"{pattern} of {size}: per run", samples))
            print(line(f"{pattern} of {size}: per agent step", [sample / size for sample in samples]))
        marginal = (medians[SIZES[-1]] - medians[SIZES[0]]) / (SIZES[-1] - SIZES[0])
        fixed = medians[SIZES[0]] - SIZES[0] * marginal
        print(
            f"{pattern}: each further agent adds {marginal:6.3f} ms to a run (the engine's share "
            f"{marginal - step:6.3f} ms); fixed cost of a run {fixed:6.3f} ms"
        )


async def parallel_wall(latency_ms: int, rounds: int) -> None:
    from asgiref.sync import sync_to_async

    organization, run = await sync_to_async(tenant)()
    agents = await sync_to_async(team)(organization, 10, latency_ms=latency_ms)
    target = await sync_to_async(orchestration)(organization, "parallel", agents)
    await orchestration_run(target, run.user_id)
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        await orchestration_run(target, run.user_id)
        walls.append(time.perf_counter() - started)
    print(wave_line(f"parallel of 10, each call {latency_ms} ms", walls, 10).replace("calls/s", "agents/s"))


async def websocket_events(args) -> None:
    from common import Server

    extra_env = {"REDIS_URL": args.redis_url} if args.redis_url else {}
    if not args.redis_url:
        os.environ.pop("REDIS_URL", None)
    database_url = f"{args.database_url}_ws" if args.database_url else None
    server = Server(database_url, extra_env=extra_env)
    try:
        token = register(server.url)
        answer = " ".join(f"word{n}" for n in range(args.words))
        talker = {"config_yaml": agent_yaml(answer=answer)}
        ids = [
            post(server.url, token, "/api/agents", {**talker, "name": f"Talker {n}"})["id"] for n in range(10)
        ]
        ws_url = server.url.replace("http://", "ws://")
        layer = "Redis" if args.redis_url else "in-memory"
        for pattern in ("parallel", "sequential"):
            body = {"name": f"{pattern} talkers", "pattern": pattern, "agent_ids": ids}
            created = post(server.url, token, "/api/orchestrations", body)
            path = f"/api/orchestrations/{created['id']}/stream"
            await stream_events(ws_url, token, path, {"inquiry": "warm-up"})
            results = [
                await stream_events(ws_url, token, path, {"inquiry": "Tell me"})
                for _ in range(args.stream_runs)
            ]
            print(events_line(f"{pattern} of 10 over a WebSocket ({layer})", results))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgres://... (recreated); default: fresh SQLite files")
    parser.add_argument("--redis-url", help="the daphne server's channel layer (default: in-memory)")
    parser.add_argument("--runs", type=int, default=300, help="agent runs per measurement")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--words", type=int, default=100, help="llm.delta events per agent")
    parser.add_argument("--stream-runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("REDIS_URL", None)  # the in-process part measures the engine, not the event bus
    label = django_in_process(args.database_url)
    print(f"## {label}")
    asyncio.run(engine_overhead(args.runs))
    asyncio.run(parallel_wall(args.latency_ms, args.rounds))
    asyncio.run(websocket_events(args))


if __name__ == "__main__":
    main()
