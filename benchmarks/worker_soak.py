"""The worker pool under time: how long a run waits after its worker is SIGKILLed before another
worker resumes it, and the resident memory of each process over a soak of mixed traffic.

1. Kill: a deployment call (`?async=1`) of an agent whose provider answers after `--kill-latency-s`
   runs on worker A alone; once it is running, worker B starts, A is SIGKILLed, and the script
   reads the ledger until the run's `run.resumed` event and its end. The bound is
   STUDIO_WORKER_STALLED_S (30 s) plus the stalled-job check (every 10 s).
2. Soak: `--soak-s` (600) of mixed traffic against one daphne web and two workers: agent lists,
   synchronous deployment calls and asynchronous ones followed to their end over the run's
   WebSocket stream, `--clients` at once. VmRSS of every process after `--warm-up-s` and at the
   end (the issue's bound: under 10 % growth).

    .venv/bin/python benchmarks/worker_soak.py [--soak-s 600]

Needs PostgreSQL and Redis (REDIS_URL, default redis://127.0.0.1:6379/9); the database is dropped
and created again. Prints the lines of benchmarks/README.md, "Worker pool".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import FakeOpenAIProcess, free_port  # noqa: E402
from gateway_overhead import django_in_process  # noqa: E402
from worker_pool import INPUTS, web, worker  # noqa: E402


def deployed(base_url: str, name: str) -> tuple[str, str]:
    """An organization, its default provider (a fake server) and a deployed agent: (key, token)."""
    from accounts.services import tokens_for
    from deployments.services import deployment_create
    from tests.accounts.factories import make_organization, make_user
    from tests.agents.agent_configs import support_yaml
    from tests.agents.factories import make_agent
    from tests.providers.factories import make_provider_config

    organization = make_organization(name=f"Soak {name}")
    admin = make_user(organization, role="admin")
    make_provider_config(organization, api_base_url=base_url, is_default=True)
    agent = make_agent(organization, support_yaml(provider="openai_compatible", model="gpt-4o-mini"))
    _, key = deployment_create(user=admin, agent_id=agent.pk, name=name, rate_limit_per_minute=1_000_000)
    return key, tokens_for(admin)["access"]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def event_at(run_id: str, kind: str, timeout_s: float) -> float | None:
    """When the run's event of this type was stored (monotonic clock of this process), or None."""
    from observability.models import RunEvent

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if RunEvent.objects.filter(run_id=run_id, type=kind).exists():
            return time.monotonic()
        time.sleep(0.1)
    return None


def run_status(run_id: str) -> str:
    from observability.models import Run

    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def kill_to_resume(env, url: str, key: str) -> list[str]:
    """Seconds from a worker's SIGKILL to the run resumed elsewhere, and to its end."""
    web_process = web(env, int(url.rsplit(":", 1)[1]))
    workers = [worker(env, 1)]
    try:
        started = httpx.post(
            f"{url}/workflows/slow/execute?async=1",
            json={"inputs": INPUTS},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
        run_id = started["run_id"]
        deadline = time.monotonic() + 60
        while run_status(run_id) != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        workers.append(worker(env, 2))
        workers[0].process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        resumed = event_at(run_id, "run.resumed", 180)
        ended = event_at(run_id, "run.completed", 180)
        status = run_status(run_id)
    finally:
        for process in [*workers, web_process]:
            if process.process.poll() is None:
                process.stop()
    shown = lambda moment: f"{moment - killed:6.1f} s" if moment else "never"  # noqa: E731
    return [
        f"worker SIGKILLed mid-run: resumed by the other after {shown(resumed)}, "
        f"completed after {shown(ended)} (status {status})"
    ]


async def soak(url: str, ws_url: str, key: str, token: str, *, seconds: float, clients: int, counts: dict):
    auth = {"Authorization": f"Bearer {token}"}
    calls = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + seconds

    async def follow(client):
        started = await client.post(
            f"{url}/workflows/soak/execute?async=1", json={"inputs": INPUTS}, headers=calls
        )
        run_id = started.json()["run_id"]
        async with websockets.connect(f"{ws_url}/api/runs/{run_id}/stream?token={token}") as socket:
            while json.loads(await asyncio.wait_for(socket.recv(), 60))["type"] not in (
                "run.completed",
                "run.failed",
            ):
                pass

    async def one_client(seed: int):
        rng = random.Random(seed)
        async with httpx.AsyncClient(timeout=60) as client:
            while time.monotonic() < deadline:
                kind = rng.choice(["read", "read", "call", "follow"])
                try:
                    if kind == "read":
                        ok = (await client.get(f"{url}/api/agents?limit=20", headers=auth)).status_code == 200
                    elif kind == "call":
                        response = await client.post(
                            f"{url}/workflows/soak/execute", json={"inputs": INPUTS}, headers=calls
                        )
                        ok = response.status_code == 200
                    else:
                        await follow(client)
                        ok = True
                except Exception:
                    ok = False
                counts[kind, ok] = counts.get((kind, ok), 0) + 1

    await asyncio.gather(*(one_client(n) for n in range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_soak")
    parser.add_argument("--kill-latency-s", type=float, default=5.0)
    parser.add_argument("--soak-s", type=float, default=600)
    parser.add_argument("--warm-up-s", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
    os.environ["REDIS_URL"] = redis_url
    django_in_process(args.database_url)
    port = free_port()
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": redis_url,
        "STUDIO_LOG_LEVEL": "WARNING",
        "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
        "STUDIO_MAX_ACTIVE_RUNS_PER_ORG": "100000",
        "STUDIO_EXECUTION": "queue",
        "STUDIO_PUBLIC_URL": url,
    }
    lines = [f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"]
    with FakeOpenAIProcess(latency_s=args.kill_latency_s) as slow, FakeOpenAIProcess(latency_s=0.2) as fake:
        slow_key, _ = deployed(slow.base_url, "slow")
        key, token = deployed(fake.base_url, "soak")
        lines += kill_to_resume(env, url, slow_key)

        web_process = web(env, port)
        workers = [worker(env, 1), worker(env, 2)]
        processes = {"web": web_process, "worker 1": workers[0], "worker 2": workers[1]}
        counts: dict = {}
        try:
            asyncio.run(
                soak(url, ws_url, key, token, seconds=args.warm_up_s, clients=args.clients, counts=counts)
            )
            warm = {name: rss_mib(p.process.pid) for name, p in processes.items()}
            counts.clear()
            asyncio.run(
                soak(url, ws_url, key, token, seconds=args.soak_s, clients=args.clients, counts=counts)
            )
            end = {name: rss_mib(p.process.pid) for name, p in processes.items()}
        finally:
            for process in processes.values():
                process.stop()
    done = ", ".join(f"{kind} {'ok' if ok else 'failed'} {n}" for (kind, ok), n in sorted(counts.items()))
    lines.append(
        f"soak {args.soak_s:g} s after {args.warm_up_s:g} s of warm-up, {args.clients} clients: {done}"
    )
    for name in warm:
        growth = (end[name] - warm[name]) / warm[name] * 100
        lines.append(
            f"RSS {name:<9} after warm-up {warm[name]:7.1f} MiB"
            f"   at the end {end[name]:7.1f} MiB   {growth:+5.1f} %"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
