"""Server CPU per call, req/s and p50 of a deployment call (`POST /workflows/{name}/execute`) over
the tests' fake OpenAI server answering after 100 ms in a process of its own, beside LiteLLM's proxy
(no database) over the same fake server in the same run, and the fake server called directly.

Closed-loop clients with `wrk` (1, 16 and 64 connections), each round after a warm-up. The CPU of
each server (every process of its tree, from /proc) is read before and after a round, so the figure
per call holds on a busy machine where req/s does not. The studio is served by `manage.py serve`
(uvicorn, the production command; `--server daphne` for make run's), set up through the public API
(benchmarks/request_cost.py's `Servers` and `set_up`).

LiteLLM lives in a virtualenv of its own (`python -m venv /work/litellm-venv &&
/work/litellm-venv/bin/pip install 'litellm[proxy]'`); without one at `--litellm`, its rows are
skipped with a message.

    .venv/bin/python -m benchmarks.deployment_cost --database-url postgres://postgres@127.0.0.1:5432/bench_calls
    .venv/bin/python -m benchmarks.deployment_cost --litellm /work/litellm-venv --clients 1 16 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import ROOT, FakeOpenAIProcess, free_port
from benchmarks.request_cost import Servers, process_tree_cpu_s, set_up, wrk

PROVIDER_LATENCY_MS = 100.0
MODEL = "gpt-4o-mini"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Where is my refund?"}]}
CALL = {"inputs": {"inquiry": "Where is my refund?"}}


@dataclass
class Row:
    server: str
    clients: int
    rps: float
    p50_ms: float
    cpu_ms: float
    errors: int

    def line(self) -> str:
        overhead = self.p50_ms - PROVIDER_LATENCY_MS
        return (
            f"{self.server:<22} {self.clients:>7} {self.rps:8.1f} {self.p50_ms:8.1f} {overhead:+9.1f}"
            f" {self.cpu_ms:11.2f} {self.errors:7d}"
        )


HEADER = (
    f"{'server':<22} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p50-100':>9}"
    f" {'CPU ms/call':>11} {'errors':>7}"
)


def measure(
    label: str, url: str, cpu_s: Callable[[], float], *, headers, body, clients: int, seconds: float
) -> Row:
    options = {"headers": headers, "connections": clients, "body": json.dumps(body)}
    wrk(url, seconds=max(1.0, seconds / 4), **options)  # warm-up
    before = cpu_s()
    result = wrk(url, seconds=seconds, **options)
    cpu_ms = (cpu_s() - before) * 1000 / max(1, result["requests"])
    return Row(label, clients, result["rps"], result["p50_ms"], cpu_ms, result["errors"])


class LiteLLMProxy:
    """`litellm --config` (one uvicorn worker, no database) routing MODEL to the fake server;
    callers present its master key, as ours present a deployment key."""

    def __init__(self, venv: Path, fake: FakeOpenAIProcess):
        self.tmp = tempfile.TemporaryDirectory()
        config = Path(self.tmp.name) / "config.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {fake.base_url}\n"
            f"      api_key: {fake.api_key}\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.master_key = f"sk-{secrets.token_hex(32)}"
        env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": self.master_key}
        env.pop("DATABASE_URL", None)  # the proxy would use it
        command = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--num_workers", "1"],
            env=env,
            cwd=self.tmp.name,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the LiteLLM proxy exited")
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("the LiteLLM proxy did not start")

    def cpu_s(self) -> float:
        return process_tree_cpu_s(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.tmp.cleanup()


def studio_rows(args, fake: FakeOpenAIProcess, processes: int) -> Iterator[Row]:
    servers = Servers(args.server, processes, args.database_url, {"STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1"})
    try:
        name, key, _ = set_up(servers.url, fake.base_url)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        label = f"studio ({processes} proc)"
        for clients in args.clients:
            yield measure(
                label,
                f"{servers.url}/workflows/{name}/execute",
                servers.cpu_s,
                headers=headers,
                body=CALL,
                clients=clients,
                seconds=args.seconds,
            )
    finally:
        servers.stop()


def litellm_rows(args, fake: FakeOpenAIProcess) -> Iterator[Row]:
    venv = Path(args.litellm)
    if not (venv / "bin" / "litellm").exists():
        print(f"LiteLLM skipped: no virtualenv with litellm[proxy] at {venv} (see the docstring)")
        return
    proxy = LiteLLMProxy(venv, fake)
    try:
        headers = {"Authorization": f"Bearer {proxy.master_key}", "Content-Type": "application/json"}
        for clients in args.clients:
            yield measure(
                "LiteLLM proxy",
                f"{proxy.url}/v1/chat/completions",
                proxy.cpu_s,
                headers=headers,
                body=CHAT,
                clients=clients,
                seconds=args.seconds,
            )
    finally:
        proxy.stop()


def direct_rows(args, fake: FakeOpenAIProcess) -> Iterator[Row]:
    headers = {"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"}
    for clients in args.clients:
        yield measure(
            "fake provider, direct",
            f"{fake.base_url}/chat/completions",
            lambda: process_tree_cpu_s(fake.process.pid),
            headers=headers,
            body=CHAT,
            clients=clients,
            seconds=args.seconds,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--server", default="uvicorn", help="uvicorn (manage.py serve) or daphne")
    parser.add_argument("--processes", type=int, nargs="*", default=[1])
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="of each measured round")
    parser.add_argument("--litellm", default="/work/litellm-venv", help="virtualenv with litellm[proxy]")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    database = "PostgreSQL" if (args.database_url or "").startswith("postgres") else "SQLite"
    redis = "Redis" if os.environ.get("REDIS_URL") else "no Redis"
    print(f"{database}, {redis}, studio on {args.server}, fake provider {PROVIDER_LATENCY_MS:g} ms, {ROOT}")
    print(HEADER, flush=True)
    with FakeOpenAIProcess(latency_s=PROVIDER_LATENCY_MS / 1000) as fake:
        studio = [studio_rows(args, fake, processes) for processes in args.processes]
        for rows in [*studio, litellm_rows(args, fake), direct_rows(args, fake)]:
            for row in rows:
                print(row.line(), flush=True)


if __name__ == "__main__":
    main()
