"""The worker pool as it runs in production (STUDIO_EXECUTION=queue): two daphne web processes and
two `manage.py worker` processes, real subprocesses on the test PostgreSQL database and Redis,
with agents calling the fake OpenAI-compatible server of this process on 127.0.0.1.

- a run started through web A is followed live through web B (`/api/runs/{id}/stream`);
- a deployment's rate limit holds across both webs (a burst of 2L calls on a limit L);
- SIGTERM to a worker: its run finishes within the drain bound, none is left `running`;
- a worker killed with SIGKILL mid-orchestration: the other one resumes the run, which ends as ONE
  completed run in which every agent was paid once (the fake provider's calls counted).

Every process is started with a deadline and stopped (SIGKILL at worst) when the module ends."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings as django_settings
from django.db import connection

from accounts.services import tokens_for
from deployments.models import Deployment
from observability.models import Run, RunEvent, Span
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.conftest import LIVE_CACHE_PREFIX
from tests.deployments.helpers import INPUTS, bearer
from tests.live import _database_url
from tests.orchestrations import helpers as team
from tests.providers.factories import make_provider_config

ROOT = Path(__file__).resolve().parents[2]
ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

pytestmark = [
    pytest.mark.skipif(
        not (ON_POSTGRESQL and django_settings.REDIS_URL),
        reason="the worker pool needs PostgreSQL (STUDIO_EXECUTION=queue) and Redis (shared events)",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.live,
    pytest.mark.timeout(300),
]

START_WITHIN_S = 180  # four Django processes starting at once on a loaded 2-core machine
REMOTE = {"provider": "openai_compatible", "model": "gpt-4o-mini"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A subprocess of the pool, its output in var/, killed if it outlives its test module."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready: str):
        self.name, self.ready = name, re.compile(ready)
        self.log_path = ROOT / "var" / f"pool-{name}-{os.getpid()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.output()[-3000:]}")
        return bool(self.ready.search(self.output()))

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


class Web(Process):
    def __init__(self, name: str, env: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "studio.asgi:application",
        ]
        super().__init__(name, command, {**env, "STUDIO_PUBLIC_URL": self.url}, r"Listening on TCP address")


class Worker(Process):
    def __init__(self, name: str, env: dict[str, str], *extra: str):
        command = [sys.executable, "manage.py", "worker", "--concurrency", "20", *extra]
        super().__init__(name, command, env, r"Starting worker on")


def pool_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "STUDIO_TEST_CACHE_PREFIX": LIVE_CACHE_PREFIX,
        "STUDIO_EXECUTION": "queue",
        "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
        # Workers beat every second; the jobs of one silent for 4 s go to another.
        "STUDIO_WORKER_HEARTBEAT_S": "1",
        "STUDIO_WORKER_STALLED_S": "4",
        "STUDIO_QUEUE_LOG_LEVEL": "INFO",  # workers log each job they start (with its run id)
        **extra,
    }


def wait_for(condition, *, within_s: float, what: str):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {within_s} s: {what}")


@pytest.fixture(scope="module")
def pool(django_db_setup, django_db_blocker, fake_openai_server):
    """Web A, web B and two workers (one with a long drain, one with a short one)."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM procrastinate_jobs")
        env = pool_env()
        processes = {
            "web_a": Web("web-a", env),
            "web_b": Web("web-b", env),
            "worker_1": Worker("worker-1", pool_env(STUDIO_WORKER_DRAIN_S="60")),
            "worker_2": Worker("worker-2", pool_env(STUDIO_WORKER_DRAIN_S="60")),
        }
    try:
        wait_for(
            lambda: all(process.is_ready() for process in processes.values()),
            within_s=START_WITHIN_S,
            what="the webs listen and the workers take jobs",
        )
        yield processes
    finally:
        for process in processes.values():
            process.stop()
            process.log_path.unlink(missing_ok=True)


@pytest.fixture
def fake(fake_openai_server):
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


def api(web: Web, token: str) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers=bearer(token), timeout=60)


def remote_agent(organization, name: str = "Support"):
    return make_agent(organization, support_yaml(**REMOTE), name=name)


def deploy(web: Web, token: str, **body) -> str:
    with api(web, token) as client:
        response = client.post("/api/deploy", json=body)
    assert response.status_code == 201, response.text
    return response.json()["api_key"]


def call_async(web: Web, name: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{web.url}/workflows/{name}/execute?async=1",
        json={"inputs": INPUTS},
        headers=bearer(key),
        timeout=60,
    )


def test_a_run_started_through_one_web_is_followed_live_through_the_other(pool, fake, admin_user):
    make_provider_config(admin_user.organization, api_base_url=fake.base_url, is_default=True)
    agent = remote_agent(admin_user.organization)
    token = tokens_for(admin_user)["access"]
    key = deploy(pool["web_a"], token, agent_id=agent.pk, name="followed")
    fake.latency_s = 2.0  # the run is still going when B's client comes

    accepted = call_async(pool["web_a"], "followed", key)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]

    async def follow() -> tuple[str, list[dict]]:
        url = f"{pool['web_b'].ws_url}/api/runs/{run_id}/stream?token={token}"
        async with websockets.connect(url, open_timeout=30) as socket_:
            status_at_connect = (await Run.objects.aget(pk=run_id)).status
            frames = []
            async for message in socket_:
                frames.append(json.loads(message))
                if frames[-1]["type"] in ("run.completed", "run.failed"):
                    break
            return status_at_connect, frames

    status_at_connect, frames = asyncio.run(asyncio.wait_for(follow(), 90))
    assert status_at_connect in ("queued", "running")
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "run.started" and frames[-1]["type"] == "run.completed"
    assert {frame["run_id"] for frame in frames} == {run_id}
    assert Run.objects.get(pk=run_id).status == "completed"
    assert len(fake.requests) == 1


def test_a_deployment_rate_limit_holds_across_both_webs(pool, fake, admin_user):
    limit = 3
    agent = make_agent(admin_user.organization, support_yaml(responses=[{"response": {"response": "ok"}}]))
    token = tokens_for(admin_user)["access"]
    key = deploy(pool["web_a"], token, agent_id=agent.pk, name="limited", rate_limit_per_minute=limit)
    if time.time() % 60 > 50:  # one fixed minute for the whole burst
        time.sleep(61 - time.time() % 60)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                client.post(
                    f"{pool['web_a' if index % 2 else 'web_b'].url}/workflows/limited/execute?async=1",
                    json={"inputs": INPUTS},
                    headers=bearer(key),
                )
                for index in range(2 * limit)
            ]
            return [response.status_code for response in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert sorted(set(statuses)) <= [202, 429], statuses
    assert statuses.count(202) <= limit and statuses.count(429) >= limit, statuses
    runs = Run.objects.filter(deployment_id=Deployment.objects.get(name="limited").pk)
    wait_for(
        lambda: runs.filter(status="completed").count() == statuses.count(202),
        within_s=60,
        what="the runs end",
    )


def test_sigterm_lets_a_worker_finish_its_runs_within_the_drain_bound(pool, fake, admin_user):
    """Worker 1 drains for up to 60 s: its run, 3 s from its end, completes before it exits."""
    make_provider_config(admin_user.organization, api_base_url=fake.base_url, is_default=True)
    agent = remote_agent(admin_user.organization)
    token = tokens_for(admin_user)["access"]
    key = deploy(pool["web_a"], token, agent_id=agent.pk, name="drained")
    pool["worker_2"].process.send_signal(signal.SIGSTOP)  # only worker 1 takes the job
    try:
        fake.latency_s = 3.0
        run_id = call_async(pool["web_a"], "drained", key).json()["run_id"]
        wait_for(lambda: run_id in pool["worker_1"].output(), within_s=30, what="worker 1 starts the run")
        stopped_at = time.monotonic()
        assert pool["worker_1"].stop(timeout_s=60) == 0
        drained_s = time.monotonic() - stopped_at
    finally:
        pool["worker_2"].process.send_signal(signal.SIGCONT)
    run = Run.objects.get(pk=run_id)
    assert run.status == "completed", (run.status, run.error)
    assert drained_s < 60
    assert not Run.objects.filter(status="running").exists()


def test_a_worker_killed_mid_orchestration_is_resumed_elsewhere_and_each_agent_paid_once(
    pool, fake, admin_user
):
    """Runs after the SIGTERM test: worker 2 is the pool; a third worker joins, then dies."""
    org = admin_user.organization
    make_provider_config(org, api_base_url=fake.base_url, is_default=True)
    agents = [team.make_agent(org, name, inputs=("text",), outputs=("text",), **REMOTE) for name in "ABC"]
    orchestration = team.make_orchestration(org, "sequential", agents, name="pipeline")
    token = tokens_for(admin_user)["access"]
    key = deploy(pool["web_a"], token, orchestration_id=orchestration.pk, name="pipeline")

    doomed = Worker("worker-3", pool_env())
    try:
        wait_for(doomed.is_ready, within_s=START_WITHIN_S, what="worker 3 takes jobs")
        pool["worker_2"].process.send_signal(signal.SIGSTOP)  # only worker 3 takes the job
        try:
            fake.latency_s = 1.5
            response = httpx.post(
                f"{pool['web_b'].url}/workflows/pipeline/execute?async=1",
                json={"inputs": {"text": "draft"}},
                headers=bearer(key),
                timeout=60,
            )
            run_id = response.json()["run_id"]
            wait_for(
                lambda: RunEvent.objects.filter(run_id=run_id, type="agent.completed").exists(),
                within_s=60,
                what="the first agent answered",
            )
            assert run_id in doomed.output()
            doomed.process.kill()  # SIGKILL, mid-run: nothing of it is finished by the dying worker
            doomed.process.wait()
            assert Run.objects.get(pk=run_id).status == "running"
        finally:
            pool["worker_2"].process.send_signal(signal.SIGCONT)
    finally:
        doomed.stop()
        doomed.log_path.unlink(missing_ok=True)

    run = wait_for(
        lambda: (found := Run.objects.get(pk=run_id)).status in Run.FINISHED and found,
        within_s=90,
        what="the run ends on the surviving worker",
    )
    assert run.status == "completed", run.error
    assert Run.objects.filter(deployment_id=run.deployment_id).count() == 1
    events = list(RunEvent.objects.filter(run_id=run_id).order_by("seq"))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    [resumed] = [event for event in events if event.type == "run.resumed"]
    assert [event.type for event in events].count("run.completed") == 1
    # Each agent paid once: one completed LLM call each; only a call in flight was made again.
    paid = Span.objects.filter(run_id=run_id, kind="llm", status="completed")
    assert sorted(paid.values_list("agent_id", flat=True)) == sorted(agent.pk for agent in agents)
    interrupted = resumed.data["interrupted_calls"]
    assert interrupted <= 1
    assert len(fake.requests) == len(agents) + interrupted
    assert run.cost_usd == sum(span.cost_usd for span in paid)
