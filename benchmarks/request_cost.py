"""Server CPU per request and req/s of the API's cheapest requests, next to a bare async Django view
(`/bench/bare`, benchmarks/bench_settings.py) on the same server in the same run. Deployment calls
have their own script, benchmarks/deployment_cost.py (beside LiteLLM's proxy).

Measured with `wrk` (C, little CPU of its own; `apt-get install wrk`), one endpoint after another,
each after a warm-up. The server's CPU time is read from /proc (utime + stime of every server
process and its children) before and after, so the figure per request holds on a busy machine
where req/s does not; each row ends with the machine's load average (a shared machine inflates
even CPU per request: compare rows of one run).

    .venv/bin/python -m benchmarks.request_cost                     # SQLite, 1 and 2 processes
    .venv/bin/python -m benchmarks.request_cost --database-url postgres://postgres@127.0.0.1:5432/bench_cost
    .venv/bin/python -m benchmarks.request_cost --server daphne --processes 1 --seconds 5  # make run's server
    .venv/bin/python -m benchmarks.request_cost --processes 1 --only bare /api/agents  # two of the rows
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from benchmarks.common import ROOT, FakeOpenAIProcess, recreate_postgres_database
from benchmarks.deployment_endpoint import AGENT_YAML, PASSWORD, _checked

AGENTS = 20


def process_tree_cpu_s(root_pid: int) -> float:
    """User + system CPU seconds of `root_pid` and all its descendants, living ones (Linux)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, pending = 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        total += times.get(pid, 0.0)
        pending.extend(children.get(pid, ()))
    return total


class Servers:
    """N server processes on one port: `manage.py serve --workers N` (uvicorn, the production
    command), or N daphne processes sharing one listening socket (`--fd`)."""

    def __init__(self, kind: str, processes: int, database_url: str | None, extra_env: dict[str, str]):
        self.tmp = tempfile.TemporaryDirectory()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        url = database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3"
        if url.startswith("postgres"):
            recreate_postgres_database(url)
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
            "STUDIO_PUBLIC_URL": self.url,
            "STUDIO_LOG_LEVEL": "WARNING",
            # set_up registers an organization each run; the default 20/hour per address, counted
            # in the shared Redis across runs, refused the fourth or fifth run of an hour (429).
            "STUDIO_THROTTLE_REGISTER": "100000/hour",
            **extra_env,
        }
        run = [sys.executable, "manage.py"]
        subprocess.run([*run, "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True)
        if kind == "daphne":
            self.sock.listen(1024)
            fd = self.sock.fileno()
            command = [sys.executable, "-m", "daphne", "-v", "0", "--fd", str(fd), "studio.asgi:application"]
            self.processes = [
                subprocess.Popen(command, cwd=ROOT, env=self.env, pass_fds=[fd]) for _ in range(processes)
            ]
        else:
            self.sock.close()  # the serving command binds the port itself
            command = [*run, "serve", "--skip-startup", "--port", str(self.port), "--workers", str(processes)]
            self.processes = [subprocess.Popen(command, cwd=ROOT, env=self.env)]
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def cpu_s(self) -> float:
        return sum(process_tree_cpu_s(process.pid) for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=20)
        self.sock.close()
        self.tmp.cleanup()


@dataclass
class Round:
    label: str
    rps: float
    p50_ms: float
    cpu_ms: float
    errors: int
    load: float  # the machine's 1-minute load average at the end of the round


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, headers: dict[str, str], seconds: float, connections: int, body: str | None) -> dict:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
            script.flush()
            command += ["-s", script.name]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: .*?timeout (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": float(p50.group(1)) * _UNITS[p50.group(2)] if p50 else float("nan"),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (int(errors.group(1)) if errors else 0),
    }


def measure(
    servers: Servers, label: str, path: str, args, *, headers=None, body=None, connections=10
) -> Round:
    options = {"headers": headers or {}, "connections": connections, "body": body}
    wrk(servers.url + path, seconds=max(1.0, args.seconds / 4), **options)  # warm-up
    before = servers.cpu_s()
    result = wrk(servers.url + path, seconds=args.seconds, **options)
    cpu_ms = (servers.cpu_s() - before) * 1000 / max(1, result["requests"])
    return Round(label, result["rps"], result["p50_ms"], cpu_ms, result["errors"], os.getloadavg()[0])


def set_up(url: str, fake_base_url: str) -> tuple[str, str, str]:
    """Registers an organization with a provider on the fake server and AGENTS agents, deploys the
    first; returns (deployment name, its key, an access token)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        register = {"org_name": "Bench", "email": "bench@example.com", "password": PASSWORD}
        token = _checked(client.post("/api/auth/register", json=register))["access"]
        client.headers["Authorization"] = f"Bearer {token}"
        provider = {
            "provider": "openai_compatible",
            "name": "fake",
            "api_key": "test-key",
            "api_base_url": fake_base_url,
            "is_default": True,
        }
        _checked(client.post("/api/providers", json=provider))
        agents = [
            _checked(client.post("/api/agents", json={"name": f"Agent {i}", "config_yaml": AGENT_YAML}))
            for i in range(AGENTS)
        ]
        deploy = {"agent_id": agents[0]["id"], "rate_limit_per_minute": 100_000}
        deployed = _checked(client.post("/api/deploy", json=deploy))
    return deployed["name"], deployed["api_key"], token


def run(args, processes: int, fake: FakeOpenAIProcess) -> Iterator[Round]:
    servers = Servers(
        args.server,
        processes,
        args.database_url,
        {"STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1"},
    )
    try:
        _, _, token = set_up(servers.url, fake.base_url)
        bearer = {"Authorization": f"Bearer {token}"}
        requests = [
            ("bare async view GET /bench/bare", "/bench/bare", {}),
            ("GET /api/health/live", "/api/health/live", {}),
            ("GET /api/auth/me", "/api/auth/me", bearer),
            (f"GET /api/agents?limit=20 ({AGENTS})", "/api/agents?limit=20", bearer),
        ]
        for label, path, headers in requests:
            if not args.only or any(part in label for part in args.only):
                yield measure(servers, label, path, args, headers=headers)
    finally:
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--server", default="uvicorn", help="uvicorn (manage.py serve) or daphne")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0, help="of each measured round")
    parser.add_argument(
        "--only", nargs="*", help="the requests whose label contains one of these (e.g. /api/agents bare)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    database = "PostgreSQL" if (args.database_url or "").startswith("postgres") else "SQLite"
    with FakeOpenAIProcess(latency_s=0.1) as fake:
        for processes in args.processes:
            print(f"\n{database}, {args.server}, {processes} process(es), wrk -t2 -c10 -d{args.seconds:g}s")
            print(f"{'request':<40} {'req/s':>8} {'p50 ms':>8} {'CPU ms/req':>11} {'errors':>7} {'load':>5}")
            for row in run(args, processes, fake):
                print(
                    f"{row.label:<40} {row.rps:8.1f} {row.p50_ms:8.1f} {row.cpu_ms:11.2f} {row.errors:7d}"
                    f" {row.load:5.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
