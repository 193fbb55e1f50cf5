"""What the agent runtime costs per run, how fast its events reach a WebSocket client, and whether
test runs through a fake provider run concurrently.

1. Per-run overhead (in this process): a recorded `agent_test` run of a single_shot agent on the
   `mock` provider at zero latency, `--runs` times: run row, run/agent/llm spans, four events,
   prompt building, structured-output parsing, budgets. Median and p99 per run, queries per run.
2. Events per second through the WebSocket path (a daphne server on its own fresh database): an
   agent whose scripted answer streams as `--words` `llm.delta` events at zero latency, executed on
   `/api/agents/{id}/stream`; every event is stored, published to the channel layer and sent.
3. `--concurrent` test runs at once against the fake OpenAI-compatible server (in a process of its
   own) answering after `--latency-ms`: in this process (`agent_run_start`), and as
   `POST /api/agents/{id}/test` requests to the daphne server.

    .venv/bin/python benchmarks/agent_runtime.py [--database-url postgres://postgres@127.0.0.1:5432/bench_agents]

With --database-url, the in-process part uses that database and daphne the same name + "_ws" (both
dropped and created again); without it, two fresh SQLite files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from gateway_overhead import django_in_process, line, queries_of, tenant, wave_line  # noqa: E402

PASSWORD = "bench-password-123"


def agent_yaml(*, provider="mock", model="mock-1", answer: str | None = None, latency_ms=0) -> str:
    """A single_shot support agent; on the mock provider, `answer` is its scripted response."""
    lines = [
        "signature:",
        "  system_prompt: You are a support agent. Answer the customer briefly.",
        "  inputs: [{name: inquiry, type: string, description: The customer's message}]",
        "  outputs:",
        "    - {name: response, type: string, description: The reply}",
        "    - {name: priority, type: enum, enum_values: [low, high]}",
        "provider:",
        f"  provider: {provider}",
        f"  model: {model}",
    ]
    if provider == "mock":
        lines.append(f"  latency_ms: {latency_ms}")
        if answer is not None:
            lines.append(
                f"  responses: {json.dumps([{'response': {'response': answer, 'priority': 'high'}}])}"
            )
    lines += ["config:", "  max_retries: 0", "  timeout_s: 60"]
    return "\n".join(lines) + "\n"


# --- in process ----------------------------------------------------------------------------------


def saved_agent(organization, yaml_text: str, name="Support"):
    from agents.config_schema import parse_agent_config
    from agents.models import Agent

    return Agent.objects.create(
        organization=organization, name=name, config_yaml=yaml_text, config=parse_agent_config(yaml_text)
    )


async def one_run(agent, spec, user_id) -> None:

    from agents.runs import agent_run_start
    from observability.supervisor import RunDraft

    inputs = {"inquiry": "Where is my refund for order 42?"}
    draft = RunDraft(
        organization_id=agent.organization_id,
        user_id=user_id,
        kind="agent_test",
        input=inputs,
        agent_id=agent.pk,
    )
    await agent_run_start(draft, spec)


async def per_run_overhead(runs: int) -> None:
    from asgiref.sync import sync_to_async

    from agents.runs import agent_spec

    organization, run = await sync_to_async(tenant)()
    agent = await sync_to_async(saved_agent)(organization, agent_yaml())
    spec = await sync_to_async(agent_spec)(agent)
    for _ in range(30):  # warm-up
        await one_run(agent, spec, run.user_id)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await one_run(agent, spec, run.user_id)
        samples.append((time.perf_counter() - started) * 1000)
    print(line("agent run, mock at zero latency", samples))
    print(f"{'queries per run':<44} {await queries_of(lambda: one_run(agent, spec, run.user_id))}")


async def concurrent_in_process(concurrent: int, latency_ms: float, rounds: int, fake_url: str) -> None:
    from asgiref.sync import sync_to_async

    from agents.runs import agent_spec
    from providers.llm.clients import close_clients
    from tests.providers.factories import make_provider_config

    organization, run = await sync_to_async(tenant)()
    await sync_to_async(make_provider_config)(organization, api_base_url=fake_url, is_default=True)
    agent = await sync_to_async(saved_agent)(
        organization, agent_yaml(provider="openai_compatible", model="gpt-4o-mini")
    )
    spec = await sync_to_async(agent_spec)(agent)

    async def wave() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one_run(agent, spec, run.user_id) for _ in range(concurrent)))
        return time.perf_counter() - started

    try:
        await wave()
        walls = [await wave() for _ in range(rounds)]
    finally:
        await close_clients()
    print(wave_line(f"{concurrent} runs at once in process ({latency_ms:g} ms)", walls, concurrent))


# --- through daphne ------------------------------------------------------------------------------


def register(url: str) -> str:
    import httpx

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    body = {"org_name": "Bench", "email": email, "password": PASSWORD}
    response = httpx.post(f"{url}/api/auth/register", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["access"]


def post(url: str, token: str, path: str, body: dict) -> dict:
    import httpx

    response = httpx.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if response.status_code >= 400:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return response.json()


async def stream_events(ws_url: str, token: str, path: str, inputs: dict) -> tuple[int, float, int]:
    """Executes on a stream endpoint; (events received, seconds from execute to the final event,
    the final event's seq)."""
    import websockets

    async with websockets.connect(f"{ws_url}{path}", subprotocols=["bearer", token], max_size=None) as socket:
        started = time.perf_counter()
        await socket.send(json.dumps({"type": "execute", "input": inputs}))
        received = 0
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), 60))
            received += 1
            if event["type"] in ("run.completed", "run.failed"):
                return received, time.perf_counter() - started, event["seq"]


def events_line(label: str, results: list[tuple[int, float, int]]) -> str:
    rates = [received / seconds for received, seconds, _ in results]
    lost = sum(last - received for received, _, last in results)
    return (
        f"{label:<44} {statistics.median(rates):8.0f} events/s (median of {len(results)}; "
        f"{results[0][0]} events a run; {lost} events not delivered live)"
    )


async def websocket_events(server, token: str, words: int, runs: int) -> None:
    answer = " ".join(f"word{n}" for n in range(words))
    agent = post(
        server.url, token, "/api/agents", {"name": "Talker", "config_yaml": agent_yaml(answer=answer)}
    )
    ws_url = server.url.replace("http://", "ws://")
    path = f"/api/agents/{agent['id']}/stream"
    await stream_events(ws_url, token, path, {"inquiry": "warm-up"})
    results = [await stream_events(ws_url, token, path, {"inquiry": "Tell me"}) for _ in range(runs)]
    print(events_line("agent stream over a WebSocket (daphne)", results))


def remote_agent_test_url(server, token: str, fake) -> str:
    """An org-wide config of the fake OpenAI server and an agent on it; the agent's test URL."""
    provider = {
        "provider": "openai_compatible",
        "name": "Fake OpenAI",
        "api_key": fake.api_key,
        "api_base_url": fake.base_url,
        "default_model": "gpt-4o-mini",
        "is_default": True,
    }
    post(server.url, token, "/api/providers", provider)
    yaml_text = agent_yaml(provider="openai_compatible", model="gpt-4o-mini")
    agent = post(server.url, token, "/api/agents", {"name": "Remote", "config_yaml": yaml_text})
    return f"{server.url}/api/agents/{agent['id']}/test"


async def concurrent_http(test_url: str, token: str, concurrent: int, latency_ms: float, rounds: int) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrent, max_keepalive_connections=concurrent)
    async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:

        async def wave() -> tuple[float, int]:
            started = time.perf_counter()
            calls = (client.post(test_url, json={"input": {"inquiry": "Hi"}}) for _ in range(concurrent))
            responses = await asyncio.gather(*calls)
            return time.perf_counter() - started, sum(r.status_code != 200 for r in responses)

        await wave()
        results = [await wave() for _ in range(rounds)]
    walls = [wall for wall, _ in results]
    label = f"{concurrent} POST /test at once via daphne ({latency_ms:g} ms)"
    print(wave_line(label, walls, concurrent) + f", errors {sum(errors for _, errors in results)}")


async def through_daphne(args, fake) -> None:
    from common import Server

    database_url = f"{args.database_url}_ws" if args.database_url else None
    server = Server(
        database_url,
        extra_env={
            "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
            # 200 test runs at once from one user: over the default run cap and test throttle.
            "STUDIO_MAX_ACTIVE_RUNS_PER_ORG": "1000",
            "STUDIO_THROTTLE_AGENT_TEST": "100000/min",
        },
    )
    try:
        token = register(server.url)
        await websocket_events(server, token, args.words, args.stream_runs)
        test_url = remote_agent_test_url(server, token, fake)
        for concurrent in args.http_concurrent or [args.concurrent]:
            await concurrent_http(test_url, token, concurrent, args.latency_ms, args.rounds)
    finally:
        server.stop()


def main() -> None:
    from common import FakeOpenAIProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgres://... (recreated); default: fresh SQLite files")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--words", type=int, default=500, help="llm.delta events per streamed run")
    parser.add_argument("--stream-runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument(
        "--http-concurrent", type=int, action="append", help="wave size through daphne (repeatable)"
    )
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    label = django_in_process(args.database_url)
    print(f"## {label}")
    asyncio.run(per_run_overhead(args.runs))
    with FakeOpenAIProcess(latency_s=args.latency_ms / 1000) as fake:
        asyncio.run(concurrent_in_process(args.concurrent, args.latency_ms, args.rounds, fake.base_url))
        asyncio.run(through_daphne(args, fake))


if __name__ == "__main__":
    main()
