"""Runs as jobs (STUDIO_EXECUTION=queue, observability/queue.py and tasks.py), in one process: the
web side stores the run and its job together and waits for the run's end; a Procrastinate worker
on this event loop executes the job from the stored run. PostgreSQL only, like the queue; the
multi-process pool is tests/multiprocess/test_worker_pool.py."""

from __future__ import annotations

import asyncio
import functools
import json

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.test import AsyncClient
from prometheus_client import REGISTRY

from agents.runs import agent_test_run
from deployments.calls import call_finished
from observability.models import Run, RunEvent, Span
from observability.queue import finished_dump, finished_load, runs_with_live_jobs
from observability.supervisor import RunDraft, RunFailed, RunOutcome, run_start
from orchestrations.runs import orchestration_execute
from providers.reaping import runs_reap
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import GOOD, INPUTS, bearer, deploy
from tests.orchestrations import helpers as team

ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRESQL, reason="the run queue needs PostgreSQL (STUDIO_EXECUTION=queue)"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("llm_clients_closed"),
]


@pytest.fixture(autouse=True)
def queued(settings):
    """The queue on, and empty: the flush between tests leaves Procrastinate's tables alone."""
    from django.db import connection

    settings.EXECUTION = "queue"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


def jobs(**filters):
    from procrastinate.contrib.django.models import ProcrastinateJob

    return list(ProcrastinateJob.objects.filter(task_name="observability.tasks.execute_run", **filters))


async def work_off(**options) -> None:
    """A worker on this loop until the queue of runs is empty."""
    from procrastinate.contrib.django import app

    options = {"wait": False, "concurrency": 10, **options}
    worker_app = app.with_connector(app.connector.get_worker_connector())  # as manage.py worker
    async with worker_app.open_async():
        await worker_app.run_worker_async(
            queues=["runs"], listen_notify=False, install_signal_handlers=False, **options
        )


def in_a_thread(function, **kwargs):
    """`function(**kwargs)` in a thread of its own, as a request's view runs while the worker uses
    this loop; the thread's database connection is closed when it returns."""
    from django.db import connections

    def call():
        try:
            return function(**kwargs)
        finally:
            connections.close_all()

    return asyncio.create_task(sync_to_async(call, thread_sensitive=False)())


async def job_appears(**filters) -> None:
    for _ in range(500):
        if await sync_to_async(jobs)(**filters):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no job {filters}")


def slow_agent(organization, latency_ms: int):
    return make_agent(
        organization,
        support_yaml(responses=[{"response": GOOD}], extra_provider=f"  latency_ms: {latency_ms}"),
    )


async def test_a_run_is_stored_queued_with_its_job_and_nothing_executes_it_in_the_web(member):
    agent = await sync_to_async(make_agent)(member.organization, support_yaml(responses=[{"response": GOOD}]))
    draft = RunDraft(
        organization_id=member.organization_id,
        user_id=member.pk,
        kind="agent_test",
        input=INPUTS,
        agent_id=agent.pk,
    )

    async def never(recorder, root_span_id) -> RunOutcome:
        raise AssertionError("with the queue on, the web process never executes the work")

    run, outcome = await run_start(draft, never, name="Support", background=True, stream=True)
    assert outcome is None and run.status == "queued"
    [job] = await sync_to_async(jobs)(queueing_lock=run.pk)
    assert job.status == "todo" and job.queue_name == "runs"
    assert {key: job.args[key] for key in ("run_id", "name", "stream", "finished")} == {
        "run_id": run.pk,
        "name": "Support",
        "stream": True,
        "finished": None,
    }
    await asyncio.sleep(0.3)
    assert (await Run.objects.aget(pk=run.pk)).status == "queued"
    await work_off()
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.output) == ("completed", GOOD)
    # Rebuilt from the stored run with stream on: the model's text came as llm.delta events.
    assert await RunEvent.objects.filter(run_id=run.pk, type="llm.delta").aexists()


async def test_an_agent_test_waits_for_the_worker_and_answers_as_inline(member, settings):
    agent = await sync_to_async(make_agent)(member.organization, support_yaml(responses=[{"response": GOOD}]))
    waiting = in_a_thread(agent_test_run, user=member, agent=agent, inputs=INPUTS)
    await job_appears()
    await work_off()
    queued_answer = await asyncio.wait_for(waiting, 20)

    settings.EXECUTION = "inline"
    inline_answer = await in_a_thread(agent_test_run, user=member, agent=agent, inputs=INPUTS)
    assert queued_answer.keys() == inline_answer.keys()
    assert queued_answer["output"] == inline_answer["output"] == GOOD
    assert (
        queued_answer["tokens"] == inline_answer["tokens"] and queued_answer["cost"] == inline_answer["cost"]
    )


async def test_an_orchestration_execute_answers_its_agents_through_the_queue(member):
    agents = [
        await sync_to_async(team.make_agent)(member.organization, name, inputs=("text",), outputs=("text",))
        for name in ("Drafter", "Editor")
    ]
    orchestration = await sync_to_async(team.make_orchestration)(member.organization, "sequential", agents)
    waiting = in_a_thread(
        orchestration_execute, user=member, orchestration=orchestration, inputs={"text": "a draft"}
    )
    await job_appears()
    await work_off()
    answer = await asyncio.wait_for(waiting, 20)
    assert answer["agents_executed"] == [agent.pk for agent in agents]
    assert answer["output"] and answer["tokens"]["total"] > 0


async def test_a_failed_queued_run_raises_the_same_error_as_inline(member, settings):
    broke = await sync_to_async(make_agent)(
        member.organization,
        support_yaml(responses=[{"response": GOOD}], config_extra="  budget_limit_usd: 0.0000001"),
    )
    waiting = in_a_thread(agent_test_run, user=member, agent=broke, inputs=INPUTS)
    await job_appears()
    await work_off()
    with pytest.raises(RunFailed) as queued_failure:
        await asyncio.wait_for(waiting, 20)

    settings.EXECUTION = "inline"
    with pytest.raises(RunFailed) as inline_failure:
        await in_a_thread(agent_test_run, user=member, agent=broke, inputs=INPUTS)
    assert (queued_failure.value.status, queued_failure.value.code) == (402, "budget_exceeded")
    assert (queued_failure.value.status, queued_failure.value.code) == (
        inline_failure.value.status,
        inline_failure.value.code,
    )


def counted(outcome: str) -> float:
    labels = {"channel": "api", "outcome": outcome}
    return REGISTRY.get_sample_value("studio_deployment_requests_total", labels) or 0.0


@pytest.mark.parametrize("suffix", ["", "?async=1"])
async def test_a_deployment_call_runs_its_pinned_snapshot_and_the_worker_counts_it(admin_user, suffix):
    deployment, key = await sync_to_async(deploy)(admin_user, name="support")
    # Edits to the live agent after deploying never reach callers.
    await sync_to_async(type(deployment.agent).objects.filter(pk=deployment.agent_id).update)(
        config={"broken": True}
    )
    completed = counted("completed")
    call = asyncio.create_task(
        AsyncClient().post(
            f"/workflows/support/execute{suffix}",
            json.dumps({"inputs": INPUTS}),
            content_type="application/json",
            headers=bearer(key),
        )
    )
    await job_appears()
    [job] = await sync_to_async(jobs)()
    assert job.args["finished"] == {"hook": "deployments.calls.call_finished", "args": ["api"]}
    await work_off()
    response = await asyncio.wait_for(call, 20)
    assert response.status_code == (202 if suffix else 200)
    run = await Run.objects.aget(pk=response.json()["run_id"])
    assert (run.status, run.output, run.deployment_id) == ("completed", GOOD, deployment.pk)
    if not suffix:
        assert response.json()["outputs"] == GOOD
    assert counted("completed") == completed + 1


async def test_an_mcp_tool_call_waits_for_its_queued_run(admin_user):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from studio.asgi import application

    _, key = await sync_to_async(deploy)(admin_user, name="support")
    completed = REGISTRY.get_sample_value(
        "studio_deployment_requests_total", {"channel": "mcp", "outcome": "completed"}
    )

    async def call_tool():
        transport = httpx.ASGITransport(app=application)
        async with (
            httpx.AsyncClient(transport=transport, headers=bearer(key), timeout=30) as http,
            streamable_http_client("http://127.0.0.1/mcp/support", http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            [tool] = (await session.list_tools()).tools
            return await session.call_tool(tool.name, INPUTS)

    calling = asyncio.create_task(call_tool())
    await job_appears()
    await work_off()
    result = await asyncio.wait_for(calling, 30)
    assert not result.isError and result.structuredContent == GOOD
    counted_after = REGISTRY.get_sample_value(
        "studio_deployment_requests_total", {"channel": "mcp", "outcome": "completed"}
    )
    assert counted_after == (completed or 0) + 1


def test_only_registered_hooks_over_plain_values_cross_to_a_worker():
    dumped = finished_dump(functools.partial(call_finished, "mcp"))
    assert dumped == {"hook": "deployments.calls.call_finished", "args": ["mcp"]}
    assert finished_load(dumped).args == ("mcp",) and finished_load(dumped).func is call_finished
    assert finished_dump(None) is None and finished_load(None) is None
    with pytest.raises(TypeError):
        finished_dump(lambda failure: None)
    with pytest.raises(TypeError):
        finished_dump(functools.partial(call_finished, object()))


async def test_a_closure_on_finished_is_refused_before_anything_is_stored(member):
    draft = RunDraft(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})

    async def work(recorder, root_span_id) -> RunOutcome:
        return RunOutcome(output={})

    with pytest.raises(TypeError):
        await run_start(draft, work, name="x", background=True, on_finished=lambda failure: None)
    assert not await Run.objects.aexists()


async def test_a_worker_stopping_hands_its_unfinished_run_back_and_the_next_one_resumes_it(member):
    agent = await sync_to_async(slow_agent)(member.organization, 3000)
    draft = RunDraft(
        organization_id=member.organization_id,
        user_id=member.pk,
        kind="agent_test",
        input=INPUTS,
        agent_id=agent.pk,
    )

    async def never(recorder, root_span_id) -> RunOutcome:
        raise AssertionError("executed by the worker, not here")

    run, _ = await run_start(draft, never, name="Support", background=True)
    worker = asyncio.create_task(work_off(wait=True, shutdown_graceful_timeout=0.2))
    for _ in range(500):
        if (await Run.objects.aget(pk=run.pk)).status == "running":
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # inside the model call
    worker.cancel()  # Procrastinate's graceful stop: drain for 0.2 s, then abort what is left
    await asyncio.gather(worker, return_exceptions=True)

    stopped = await Run.objects.aget(pk=run.pk)
    assert stopped.status == "queued" and stopped.completed_at is None
    [job] = await sync_to_async(jobs)(queueing_lock=run.pk)
    assert (job.status, job.attempts) == ("todo", 1)

    await work_off()
    resumed = await Run.objects.aget(pk=run.pk)
    assert (resumed.status, resumed.output) == ("completed", GOOD)
    seqs = [
        seq
        async for seq in RunEvent.objects.filter(run_id=run.pk).order_by("seq").values_list("seq", flat=True)
    ]
    assert seqs == list(range(1, len(seqs) + 1))  # one unbroken stream


async def test_a_run_cancelled_while_its_job_waits_ends_cancelled_without_calling_the_model(member):
    from observability.supervisor import run_cancel

    agent = await sync_to_async(slow_agent)(member.organization, 0)
    draft = RunDraft(
        organization_id=member.organization_id,
        user_id=member.pk,
        kind="agent_test",
        input=INPUTS,
        agent_id=agent.pk,
    )

    async def never(recorder, root_span_id) -> RunOutcome:
        raise AssertionError

    run, _ = await run_start(draft, never, name="Support", background=True)
    assert await sync_to_async(run_cancel)(run)
    await work_off()
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.error["code"]) == ("cancelled", "cancelled")
    assert not await Span.objects.filter(run_id=run.pk, kind="llm").aexists()
    final = await RunEvent.objects.filter(run_id=run.pk).order_by("-seq").afirst()
    assert (final.type, final.data["status"]) == ("run.failed", "cancelled")


async def test_the_reaper_leaves_runs_whose_job_is_waiting_to_the_queue(member, settings):
    settings.MAX_ACTIVE_RUNS_PER_ORG = 100
    draft = RunDraft(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})

    async def never(recorder, root_span_id) -> RunOutcome:
        raise AssertionError

    waiting, _ = await run_start(draft, never, name="x", background=True)
    orphan = await Run.objects.acreate(organization_id=member.organization_id, kind="agent_test", input={})
    old = Run.objects.filter(pk__in=[waiting.pk, orphan.pk])
    await old.aupdate(created_at=waiting.created_at.replace(year=2020))
    assert await sync_to_async(runs_with_live_jobs)([waiting.pk, orphan.pk]) == {waiting.pk}
    reaped = [run.pk for run, _ in await runs_reap()]
    assert reaped == [orphan.pk]
    assert (await Run.objects.aget(pk=waiting.pk)).status == "queued"


async def test_the_queue_gauges_count_waiting_jobs(member):
    from observability.tasks import queue_job_counts

    draft = RunDraft(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})

    async def never(recorder, root_span_id) -> RunOutcome:
        raise AssertionError

    await run_start(draft, never, name="x", background=True)
    await run_start(draft, never, name="x", background=True)
    counts = await sync_to_async(queue_job_counts)()
    assert {"queue_name": "runs", "status": "todo", "jobs": 2} in counts
    from observability.metrics import _QueueCollector

    metrics = await sync_to_async(lambda: list(_QueueCollector(queue_job_counts).collect()))()
    samples = {
        (metric.name, sample.labels["queue"]): sample.value for metric in metrics for sample in metric.samples
    }
    assert samples[("studio_queue_depth", "runs")] == 2
    assert samples[("studio_jobs_running", "runs")] == 0


def test_a_worker_has_a_database_connection_for_each_run_it_executes_at_once(monkeypatch):
    from django.db import connections

    from observability.management.commands.worker import SPARE_CONNECTIONS, _pool_at_least

    pool = django_settings.DATABASES["default"]["OPTIONS"]["pool"]
    monkeypatch.setitem(pool, "max_size", 3)
    closed = []
    monkeypatch.setattr(connections["default"], "close_pool", lambda: closed.append(True))
    _pool_at_least(50 + SPARE_CONNECTIONS)
    assert pool["max_size"] == 55 and closed == [True]  # made anew at the next connection
    _pool_at_least(10)
    assert pool["max_size"] == 55 and closed == [True]  # never smaller


def test_loading_the_apps_in_queue_mode_reads_no_database():
    """The queue gauges are registered while Django loads its apps: registering them must not
    query the job table (Django warns of queries during app initialization)."""
    import os
    import subprocess
    import sys

    from tests.live import ROOT, _database_url

    env = {**os.environ, "DATABASE_URL": _database_url(), "STUDIO_EXECUTION": "queue"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); import observability.tasks"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "studio.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "during app initialization" not in loaded.stderr
