"""`manage.py serve`: N uvicorn workers on one port serve HTTP and WebSockets and stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from accounts.services import tokens_for
from tests.conftest import LIVE_CACHE_PREFIX
from tests.live import ROOT, _database_url, _free_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def served(django_db_blocker):
    """`manage.py serve --workers 2` on the test database."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "STUDIO_TEST_CACHE_PREFIX": LIVE_CACHE_PREFIX,
        "STUDIO_REAP_EVERY_S": "0",
    }
    # A short graceful timeout: a worker whose WebSocket task is still winding down (the Redis
    # channel layer's receive can linger after the client closed) is cut off after it, well within
    # the test's wait, instead of at the default 30 s the wait would race.
    command = [
        *(sys.executable, "manage.py", "serve", "--skip-startup", "--workers", "2", "--port", str(port)),
        *("--graceful-timeout", "5"),
    ]
    # Its own process group, so that a failed start or a failed test kills its workers too.
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _kill_group(process)
            raise RuntimeError(process.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    yield process, port
    _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    """Kills the server and every worker it started (a no-op once all have exited)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_workers_serve_http_and_websockets_and_stop_on_sigterm(served, member):
    process, port = served
    token = tokens_for(member)["access"]

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        me = [client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}) for _ in range(4)]
    assert {response.status_code for response in me} == {200}
    assert me[0].json()["email"] == member.email
    assert asyncio.run(_ping(f"ws://127.0.0.1:{port}/api/ws/ping?token={token}"))["type"] == "pong"
    workers = _children(process.pid)
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10  # the resource tracker leaves once the parent has gone
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


async def _ping(url: str) -> dict:
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        return json.loads(await socket.recv())


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
