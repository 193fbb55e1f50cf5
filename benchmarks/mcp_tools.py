"""What one MCP tool call of an agent costs: `agents.mcp_tools` (the official client over streamable
HTTP, one session per call: initialize, call, close) against the tests' FastMCP fake server in a
process of its own on loopback. Prints latency percentiles and the CPU time per call of the caller
(this process) and of the server, both read from /proc.

    .venv/bin/python -m benchmarks.mcp_tools --calls 200 --concurrency 1
    .venv/bin/python -m benchmarks.mcp_tools --calls 400 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

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


async def measure(url: str, key: str, *, calls: int, concurrency: int, server_pid: int) -> None:
    from agents.mcp_tools import headers_sealed, mcp_limits, mcp_server_tool_call, server_headers
    from agents.models import McpServer
    from providers.llm.urlsafety import url_origin

    encrypted, hint = headers_sealed({"X-Api-Key": key})
    server = McpServer(
        url=url, headers_encrypted=encrypted, headers_hint=hint, headers_origin=url_origin(url)
    )
    assert server_headers(server) == {"X-Api-Key": key}
    limits = mcp_limits()
    await mcp_server_tool_call(server, "lookup_order", {"order_id": "42"}, limits=limits)  # warm up
    latencies: list[float] = []
    queue = asyncio.Queue()
    for _ in range(calls):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            output = await mcp_server_tool_call(server, "lookup_order", {"order_id": "42"}, limits=limits)
            latencies.append((time.perf_counter() - started) * 1000)
            assert not output.is_error

    client_cpu, server_cpu, wall = cpu_seconds(), cpu_seconds(server_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    client_cpu, server_cpu = cpu_seconds() - client_cpu, cpu_seconds(server_pid) - server_cpu
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ["STUDIO_ALLOW_PRIVATE_PROVIDER_URLS"] = "1"  # the fake serves on loopback
    os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")
    import django

    django.setup()
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
                measure(url, key, calls=args.calls, concurrency=args.concurrency, server_pid=fake.pid)
            )
        finally:
            fake.stdin.close()
            fake.wait(timeout=10)


if __name__ == "__main__":
    main()
