"""Shared pieces of the benchmark scripts: a daphne server on its own database and a load loop."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_postgres_database(url: str) -> None:
    """Drops and creates the database named in a postgres URL, so every run starts empty."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Server:
    """`manage.py migrate` then daphne, on DATABASE_URL or a fresh SQLite file."""

    def __init__(self, database_url: str | None = None, extra_env: dict[str, str] | None = None):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        url = database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3"
        if url.startswith("postgres"):
            recreate_postgres_database(url)
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "STUDIO_PUBLIC_URL": self.url,
            "STUDIO_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-v", "0", "-p", str(self.port), "studio.asgi:application"],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.tmp.cleanup()


@dataclass
class LoadResult:
    label: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.label:<38} {self.rps:8.1f} req/s  p50 {statistics.median(self.latencies_ms):7.1f} ms"
            f"  p99 {self.percentile(0.99):7.1f} ms  errors {self.errors}"
        )


async def load(label: str, send, *, concurrency: int, total: int) -> LoadResult:
    """Runs `total` calls of `send(client)` with `concurrency` workers; `send` returns a response."""
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker():
            nonlocal errors
            for _ in remaining:
                started = time.perf_counter()
                response = await send(client)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return LoadResult(label, total, errors, seconds, latencies)


class FakeOpenAIProcess:
    """The tests' fake OpenAI server in a process of its own, so that its work does not share the
    measured process's GIL (an upstream provider never does). Same attributes as the server."""

    SCRIPT = (
        "import sys, json\n"
        "from tests.fakes.openai_server import FakeOpenAIServer\n"
        "server = FakeOpenAIServer(latency_s=float(sys.argv[1])).start()\n"
        "print(json.dumps({'base_url': server.base_url, 'api_key': server.api_key}), flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, latency_s: float):
        self.latency_s = latency_s

    def __enter__(self) -> FakeOpenAIProcess:
        import json

        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(self.latency_s)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started = json.loads(self.process.stdout.readline())
        self.base_url, self.api_key = started["base_url"], started["api_key"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stdin.close()  # the server process ends when its stdin does
        self.process.wait(timeout=10)
