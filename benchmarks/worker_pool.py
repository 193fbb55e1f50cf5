"""The worker pool (STUDIO_EXECUTION=queue): runs/s and end-to-end latency of agent runs with 1 and
2 worker processes, and what queueing adds to a synchronous call.

Every run is a synchronous deployment call, `POST /workflows/{name}/execute`, of a single_shot agent
over the tests' fake OpenAI-compatible server (a process of its own) answering after
`--latency-ms` (200): the web process defers the run's job and waits for its final event, a worker
executes it. End to end = the client's wall time of the call.

1. Throughput: `--calls` calls at client concurrency 50 per worker (`manage.py worker
   --concurrency 50` each), with 1 and then 2 workers behind one daphne web process.
2. Added latency: one call at a time (`--sequential` calls), the same daphne serving inline, then
   queued with one idle worker; p50/p99 of each and their difference.

    .venv/bin/python benchmarks/worker_pool.py [--database-url postgres://postgres@127.0.0.1:5432/bench_pool]

Needs PostgreSQL and Redis (REDIS_URL, default redis://127.0.0.1:6379/9); the database is dropped
and created again. Prints the lines of benchmarks/README.md, "Worker pool".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import FakeOpenAIProcess, free_port, load  # noqa: E402
from gateway_overhead import django_in_process, percentile  # noqa: E402
from request_cost import process_tree_cpu_s  # noqa: E402

INPUTS = {"inquiry": "Where is my refund?"}
CONCURRENCY_PER_WORKER = 50


def deployed_agent(base_url: str) -> str:
    """An organization, its default provider (the fake server) and a deployed agent; the key."""
    from deployments.services import deployment_create
    from tests.accounts.factories import make_organization, make_user
    from tests.agents.agent_configs import support_yaml
    from tests.agents.factories import make_agent
    from tests.providers.factories import make_provider_config

    organization = make_organization(name="Bench pool")
    admin = make_user(organization, role="admin")
    make_provider_config(organization, api_base_url=base_url, is_default=True)
    agent = make_agent(organization, support_yaml(provider="openai_compatible", model="gpt-4o-mini"))
    _, key = deployment_create(user=admin, agent_id=agent.pk, name="bench", rate_limit_per_minute=1_000_000)
    return key


class Process:
    """A web or worker process, started when `ready()` says so (within 180 s)."""

    def __init__(self, command: list[str], env: dict[str, str], ready, label: str):
        self.label = label
        self.log_path = ROOT / "var" / f"bench-pool-{label}-{os.getpid()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not ready(self):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{label} did not start")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.log_path.unlink(missing_ok=True)


def web(env: dict[str, str], port: int) -> Process:
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "studio.asgi:application"]
    return Process(command, env, lambda _: listening(port), f"web-{env['STUDIO_EXECUTION']}")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def worker(env: dict[str, str], index: int) -> Process:
    command = [sys.executable, "manage.py", "worker", "--concurrency", str(CONCURRENCY_PER_WORKER)]
    env = {**env, "STUDIO_QUEUE_LOG_LEVEL": "INFO"}  # "Starting worker on ..." says it takes jobs
    return Process(command, env, lambda process: "Starting worker on" in process.output(), f"worker-{index}")


def call_of(url: str, key: str):
    async def send(client):
        return await client.post(
            f"{url}/workflows/bench/execute",
            json={"inputs": INPUTS},
            headers={"Authorization": f"Bearer {key}"},
        )

    return send


def summary(label: str, result, cpu_ms: dict[str, float]) -> str:
    spent = ", ".join(f"{name} {ms / result.requests:.1f}" for name, ms in cpu_ms.items())
    return (
        f"{label:<30} {result.rps:7.1f} runs/s   p50 {statistics.median(result.latencies_ms):7.1f} ms"
        f"   p99 {result.percentile(0.99):7.1f} ms   errors {result.errors}/{result.requests}"
        f"   CPU ms/run: {spent}"
    )


def measured(processes: dict[str, Process], label: str, send, *, concurrency: int, total: int):
    """`load(...)` and the CPU each process (from /proc, children included) spent meanwhile, in ms."""
    before = {name: process_tree_cpu_s(process.process.pid) for name, process in processes.items()}
    result = asyncio.run(load(label, send, concurrency=concurrency, total=total))
    cpu_ms = {
        name: (process_tree_cpu_s(process.process.pid) - before[name]) * 1000
        for name, process in processes.items()
    }
    return result, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_pool")
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--calls", type=int, default=1000, help="calls per throughput measurement")
    parser.add_argument("--sequential", type=int, default=100, help="calls one at a time, per mode")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
    os.environ["REDIS_URL"] = redis_url
    django_in_process(args.database_url)

    with FakeOpenAIProcess(latency_s=args.latency_ms / 1000) as fake:
        key = deployed_agent(fake.base_url)
        base = {
            **os.environ,
            "DATABASE_URL": args.database_url,
            "REDIS_URL": redis_url,
            "STUDIO_LOG_LEVEL": "WARNING",
            "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
            "STUDIO_MAX_ACTIVE_RUNS_PER_ORG": "100000",
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        lines = [
            f"fake provider latency {args.latency_ms:g} ms; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} at the start; one daphne web process"
        ]

        inline_web = web({**base, "STUDIO_EXECUTION": "inline", "STUDIO_PUBLIC_URL": url}, port)
        try:
            asyncio.run(load("warm-up", call_of(url, key), concurrency=4, total=20))
            processes = {"web": inline_web}
            inline = measured(processes, "inline", call_of(url, key), concurrency=1, total=args.sequential)
        finally:
            inline_web.stop()

        queued_env = {**base, "STUDIO_EXECUTION": "queue", "STUDIO_PUBLIC_URL": url}
        queued_web = web(queued_env, port)
        workers: list[Process] = []
        try:
            workers.append(worker(queued_env, 1))
            asyncio.run(load("warm-up", call_of(url, key), concurrency=4, total=20))
            processes = {"web": queued_web, "worker": workers[0]}
            queued = measured(processes, "queued", call_of(url, key), concurrency=1, total=args.sequential)
            for count in (1, 2):
                if len(workers) < count:
                    workers.append(worker(queued_env, count))
                concurrency = CONCURRENCY_PER_WORKER * count
                asyncio.run(load("warm-up", call_of(url, key), concurrency=concurrency, total=concurrency))
                processes = {"web": queued_web} | {f"worker {i + 1}": w for i, w in enumerate(workers)}
                result = measured(
                    processes, "pool", call_of(url, key), concurrency=concurrency, total=args.calls
                )
                lines.append(summary(f"{count} worker(s), {concurrency} clients", *result))
        finally:
            for process in [*workers, queued_web]:
                process.stop()

    lines.append(summary("inline, 1 client", *inline))
    lines.append(summary("queued, 1 client, 1 worker", *queued))
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        added = percentile(queued[0].latencies_ms, q) - percentile(inline[0].latencies_ms, q)
        lines.append(f"queueing adds {added:+7.1f} ms at {name} to a synchronous call")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
