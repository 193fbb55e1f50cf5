"""What one MCP tool call costs: `agents.mcp_tools` (the official client over streamable HTTP, one
session per call: initialize, call, close) against the tests' FastMCP fake server in a process of
its own on loopback, or with `--deployment` against a deployment's own MCP endpoint (`/mcp/{name}`,
`deployments/mcp_server.py`) served by `manage.py serve` over the tests' fake OpenAI server. Prints
latency percentiles and the CPU time per call of the caller (this process) and of the server
(every process of its tree), both read from /proc.

    .venv/bin/python -m benchmarks.mcp_tools --calls 200 --concurrency 1
    .venv/bin/python -m benchmarks.mcp_tools --calls 400 --concurrency 8
    .venv/bin/python -m benchmarks.mcp_tools --deployment --calls 300 --database-url postgres://postgres@127.0.0.1:5432/bench_mcp
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks.common import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVE = (
    "import sys; from tests.fakes.mcp_server import FakeMcpServer; server = FakeMcpServer().start(); "
    "print(server.url, server.api_key, flush=True); sys.stdin.read()"
)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure(
    url: str,
    headers: dict[str, str],
    tool: str,
    arguments: dict,
    *,
    calls: int,
    concurrency: int,
    server_cpu_s: Callable[[], float],
) -> None:
    from agents.mcp_tools import headers_sealed, mcp_limits, mcp_server_tool_call, server_headers
    from agents.models import McpServer
    from providers.llm.urlsafety import url_origin

    encrypted, hint = headers_sealed(headers)
    server = McpServer(
        url=url, headers_encrypted=encrypted, headers_hint=hint, headers_origin=url_origin(url)
    )
    assert server_headers(server) == headers
    limits = mcp_limits()
    for _ in range(5):  # warm up
        assert not (await mcp_server_tool_call(server, tool, arguments, limits=limits)).is_error
    latencies: list[float] = []
    queue = asyncio.Queue()
    for _ in range(calls):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            output = await mcp_server_tool_call(server, tool, arguments, limits=limits)
            latencies.append((time.perf_counter() - started) * 1000)
            assert not output.is_error

    client_cpu, server_cpu, wall = cpu_seconds(), server_cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    client_cpu, server_cpu = cpu_seconds() - client_cpu, server_cpu_s() - server_cpu
    latencies.sort()
    p90 = latencies[int(len(latencies) * 0.9)]
    print(
        f"{calls} calls, concurrency {concurrency}: {calls / wall:6.1f} calls/s  "
        f"p50 {statistics.median(latencies):6.1f} ms  p90 {p90:6.1f} ms  "
        f"caller CPU {client_cpu / calls * 1000:5.2f} ms/call  "
        f"server CPU {server_cpu / calls * 1000:5.2f} ms/call"
    )
    with open("/proc/loadavg") as load:
        print(f"load average {load.read().split()[0]}")


def fake_server_calls(args) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", SERVE],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as fake:
        try:
            url, key = fake.stdout.readline().split()
            asyncio.run(
                measure(
                    url,
                    {"X-Api-Key": key},
                    "lookup_order",
                    {"order_id": "42"},
                    calls=args.calls,
                    concurrency=args.concurrency,
                    server_cpu_s=lambda: cpu_seconds(fake.pid),
                )
            )
        finally:
            fake.stdin.close()
            fake.wait(timeout=10)


def deployment_calls(args) -> None:
    """The tool call of a deployment set up as benchmarks/deployment_cost.py sets one up."""
    from benchmarks.common import FakeOpenAIProcess
    from benchmarks.request_cost import Servers, set_up

    database = "PostgreSQL" if (args.database_url or "").startswith("postgres") else "SQLite"
    redis = "Redis" if os.environ.get("REDIS_URL") else "no Redis"
    print(f"deployment's MCP endpoint, {database}, {redis}, fake provider {args.latency_ms:g} ms, {ROOT}")
    with FakeOpenAIProcess(latency_s=args.latency_ms / 1000) as fake:
        servers = Servers("uvicorn", 1, args.database_url, {"STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1"})
        try:
            name, key, _ = set_up(servers.url, fake.base_url)
            asyncio.run(
                measure(
                    f"{servers.url}/mcp/{name}",
                    {"Authorization": f"Bearer {key}"},
                    name,
                    {"inquiry": "Where is my refund?"},
                    calls=args.calls,
                    concurrency=args.concurrency,
                    server_cpu_s=servers.cpu_s,
                )
            )
        finally:
            servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--deployment", action="store_true", help="call a deployment's MCP endpoint")
    parser.add_argument("--database-url", help="with --deployment; default: a fresh SQLite file")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="with --deployment: the fake's")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ["STUDIO_ALLOW_PRIVATE_PROVIDER_URLS"] = "1"  # the fakes serve on loopback
    os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    if args.deployment:
        deployment_calls(args)
    else:
        fake_server_calls(args)


if __name__ == "__main__":
    main()
