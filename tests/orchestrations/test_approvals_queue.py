"""Approvals on the worker pool (STUDIO_EXECUTION=queue, PostgreSQL): the run's job ends when the
run waits (no worker holds it), the decision defers a new job of the run with its first job's
arguments, and a worker resumes it to the end; an overdue approval is expired by the pool's
periodic task."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.utils import timezone

from observability.models import Run
from observability.tasks import RUNS_QUEUE
from orchestrations.approvals import approval_decide
from orchestrations.models import Approval
from orchestrations.runs import orchestration_start
from orchestrations.tasks import expire_approvals
from tests.orchestrations.test_approvals import agent_calls, team

ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRESQL, reason="the worker pool needs PostgreSQL (STUDIO_EXECUTION=queue)"),
    pytest.mark.django_db(transaction=True),
]

RUN_TASK = "observability.tasks.execute_run"


@pytest.fixture
def queued(settings):
    settings.EXECUTION = "queue"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


def run_jobs(run_id: str) -> list:
    from procrastinate.contrib.django.models import ProcrastinateJob

    return list(ProcrastinateJob.objects.filter(task_name=RUN_TASK, queueing_lock=run_id).order_by("id"))


async def work_off(*queues: str) -> None:
    """A worker on this loop until no job of these queues is ready."""
    from procrastinate.contrib.django import app

    worker_app = app.with_connector(app.connector.get_worker_connector())  # as manage.py worker
    async with worker_app.open_async():
        await worker_app.run_worker_async(
            queues=list(queues), wait=False, listen_notify=False, install_signal_handlers=False
        )


async def waiting_queued_run(member, config: str) -> tuple[Run, Approval]:
    orchestration = await sync_to_async(team)(member.organization, "sequential", config)
    run, _ = await orchestration_start(
        user=member, orchestration=orchestration, inputs={"text": "hi"}, background=True
    )
    await work_off(RUNS_QUEUE)
    await run.arefresh_from_db()
    assert run.status == Run.Status.WAITING
    [job] = await sync_to_async(run_jobs)(run.pk)
    assert job.status == "succeeded"  # the job ended: no worker holds the waiting run
    approval = await Approval.objects.aget(run=run)
    return run, approval


async def test_the_decision_defers_a_new_job_that_resumes_the_run(member, queued):
    run, approval = await waiting_queued_run(member, "approval: {after: 0}")

    await sync_to_async(approval_decide)(user=member, approval=approval, decision="approve")

    first, again = await sync_to_async(run_jobs)(run.pk)
    assert again.status == "todo" and again.args["name"] == first.args["name"]
    await work_off(RUNS_QUEUE)
    await run.arefresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert run.attempts == 1
    calls = await sync_to_async(agent_calls)(run.pk)
    assert [status for _, status in calls] == ["completed", "completed"]  # the writer once


async def test_the_periodic_task_expires_an_overdue_approval(member, queued):
    run, approval = await waiting_queued_run(member, "approval: {after: 0, timeout_s: 1, on_timeout: fail}")
    await Approval.objects.filter(pk=approval.pk).aupdate(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert await expire_approvals(timestamp=0) == 1
    await work_off(RUNS_QUEUE)

    await run.arefresh_from_db()
    assert run.status == Run.Status.FAILED and run.error["code"] == "approval_expired"


async def test_a_deployment_call_is_counted_when_its_resumed_run_ends_though_its_job_is_gone(
    admin_user, queued
):
    """The call's finish hook is kept by the run's row, not only by the job that started it: a
    resumed run whose first job was pruned meanwhile is counted all the same."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    from tests.deployments.test_call_counting import approving_deployment, call, counted

    completed = counted("completed")
    key = await sync_to_async(approving_deployment)(admin_user, "approved-queued")
    started = await call("approved-queued", key, "?async=1")
    assert started.status_code == 202, started.content
    run = await Run.objects.aget(pk=started.json()["run_id"])
    await work_off(RUNS_QUEUE)
    await run.arefresh_from_db()
    assert run.status == Run.Status.WAITING and counted("completed") == completed
    await ProcrastinateJob.objects.filter(queueing_lock=run.pk).adelete()

    approval = await Approval.objects.aget(run=run)
    await sync_to_async(approval_decide)(user=admin_user, approval=approval, decision="approve")
    await work_off(RUNS_QUEUE)

    await run.arefresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert counted("completed") == completed + 1
