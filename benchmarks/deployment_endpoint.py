"""Throughput and p50/p99 of `POST /workflows/{name}/execute` with 64 concurrent clients, against the
fake OpenAI server of the tests (in a process of its own) answering every chat completion after a
fixed latency (100 ms), so the latency above that is the studio's own overhead: key check, rate
limit, input check, the run's ledger writes (run, spans, events), the gateway (provider config,
budget reservation and settlement, pricing) and the SDK call.

Everything is set up through the public API on a fresh database: register, a provider config
pointing at the fake server, an agent, a deployment. A round with one client measures a call's
overhead without queueing, then 64 clients measure throughput; each round starts with a warm-up.
The server's CPU time per call (all its threads, from /proc) shows what bounds the throughput.

    .venv/bin/python -m benchmarks.deployment_endpoint [--requests 2000] [--latency-ms 100]
    .venv/bin/python -m benchmarks.deployment_endpoint --database-url postgres://postgres@127.0.0.1:5432/bench_deploy
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import uuid

import httpx

from benchmarks.common import FakeOpenAIProcess, Server, load

CONCURRENCY = 64
PASSWORD = "bench-password-123"
AGENT_YAML = """\
signature:
  system_prompt: "You answer customer questions."
  inputs: [{name: inquiry, type: string}]
  outputs: [{name: response, type: string}, {name: priority, type: enum, enum_values: [low, high]}]
provider:
  provider: openai_compatible
  model: gpt-4o-mini
config:
  max_retries: 0
  timeout_s: 30
"""


def _checked(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise SystemExit(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response.json()


def set_up(url: str, fake_base_url: str) -> tuple[str, str]:
    """Registers an organization and deploys an agent on the fake provider; returns (name, key)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        token = _checked(
            client.post(
                "/api/auth/register", json={"org_name": "Bench", "email": email, "password": PASSWORD}
            )
        )["access"]
        client.headers["Authorization"] = f"Bearer {token}"
        _checked(
            client.post(
                "/api/providers",
                json={
                    "provider": "openai_compatible",
                    "name": "fake",
                    "api_key": "test-key",
                    "api_base_url": fake_base_url,
                    "is_default": True,
                },
            )
        )
        agent = _checked(client.post("/api/agents", json={"name": "Bench agent", "config_yaml": AGENT_YAML}))
        deployed = _checked(
            client.post("/api/deploy", json={"agent_id": agent["id"], "rate_limit_per_minute": 100_000})
        )
    return deployed["name"], deployed["api_key"]


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds the server process (all its threads) has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_per_call(server: Server, label: str, send, *, concurrency: int, requests: int):
    """Runs a warm-up and `requests` calls; returns the result and the server's CPU ms per call."""
    await load("warm-up", send, concurrency=concurrency, total=concurrency * 2)
    cpu_before = server_cpu_s(server.process.pid)
    result = await load(label, send, concurrency=concurrency, total=requests)
    return result, (server_cpu_s(server.process.pid) - cpu_before) * 1000 / requests


async def measure(server: Server, name: str, key: str, args) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"inputs": {"inquiry": "Where is my refund?"}}

    def execute(client: httpx.AsyncClient):
        return client.post(f"{server.url}/workflows/{name}/execute", json=body, headers=headers)

    # Where a call's CPU goes, one client at a time: the bare Django stack (a view without the
    # database), a deployment's admission (key check, one query, the schemas), a whole call.
    references = (
        ("GET /api/health/live", lambda client: client.get(f"{server.url}/api/health/live")),
        (
            f"GET /workflows/{name}",
            lambda client: client.get(f"{server.url}/workflows/{name}", headers=headers),
        ),
    )
    for label, send in references:
        result, cpu_ms = await cpu_per_call(server, label, send, concurrency=1, requests=args.single_requests)
        print(f"{result.line()}  server CPU {cpu_ms:.1f} ms a call")
    for concurrency, requests in ((1, args.single_requests), (CONCURRENCY, args.requests)):
        result, cpu_ms = await cpu_per_call(
            server, f"execute, {concurrency} client(s)", execute, concurrency=concurrency, requests=requests
        )
        p50, p99 = statistics.median(result.latencies_ms), result.percentile(0.99)
        ideal = concurrency / (args.latency_ms / 1000)
        print(f"{result.line()}  server CPU {cpu_ms:.1f} ms a call")
        print(
            f"{'':<38} overhead over {args.latency_ms:.0f} ms: p50 {p50 - args.latency_ms:.1f} ms,"
            f" p99 {p99 - args.latency_ms:.1f} ms; {result.rps / ideal:.0%} of the ideal {ideal:.0f} req/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--requests", type=int, default=2000, help="calls of the 64-client round")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--single-requests", type=int, default=100, help="calls of each one-client round")
    args = parser.parse_args()
    with FakeOpenAIProcess(latency_s=args.latency_ms / 1000) as fake:
        server = Server(args.database_url, extra_env={"STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1"})
        try:
            name, key = set_up(server.url, fake.base_url)
            asyncio.run(measure(server, name, key, args))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
