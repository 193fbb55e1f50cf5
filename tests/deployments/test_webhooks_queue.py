"""Webhook deliveries on the worker pool (STUDIO_EXECUTION=queue, PostgreSQL): each attempt is a
Procrastinate job, a failed one defers the next with its back-off, lost jobs are found again by
the periodic sweep. A worker on the test's event loop works the jobs off."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.utils import timezone

from deployments.models import WebhookDelivery
from deployments.services import deployment_stop
from deployments.webhooks import webhook_create
from tests.deployments.factories import make_delivery, make_webhook
from tests.deployments.helpers import deploy
from tests.fakes.webhook_receiver import WebhookReceiver

ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRESQL, reason="the worker pool needs PostgreSQL (STUDIO_EXECUTION=queue)"),
    pytest.mark.django_db(transaction=True),
]

ATTEMPT_TASK = "deployments.webhook_tasks.webhook_attempt"


@pytest.fixture
def receiver(settings):
    settings.EXECUTION = "queue"
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    settings.WEBHOOK_RETRY_DELAYS_S = [0.2]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")
    with WebhookReceiver() as server:
        yield server


def attempt_jobs() -> list:
    from procrastinate.contrib.django.models import ProcrastinateJob

    return list(ProcrastinateJob.objects.filter(task_name=ATTEMPT_TASK).order_by("id"))


async def work_off() -> None:
    """A worker on this loop until no webhook job is ready."""
    from procrastinate.contrib.django import app

    worker_app = app.with_connector(app.connector.get_worker_connector())  # as manage.py worker
    async with worker_app.open_async():
        await worker_app.run_worker_async(
            queues=["webhooks"], wait=False, listen_notify=False, install_signal_handlers=False
        )


async def test_each_attempt_is_a_job_and_a_failure_defers_the_next_with_its_back_off(admin_user, receiver):
    webhook, receiver.secret = await sync_to_async(webhook_create)(
        user=admin_user, url=receiver.url, events=["deployment.stopped"]
    )
    receiver.answer(500)
    deployment, _ = await sync_to_async(deploy)(admin_user, name="queued-hook")
    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)

    [delivery] = [d async for d in WebhookDelivery.objects.filter(webhook=webhook)]
    [first] = await sync_to_async(attempt_jobs)()
    assert first.args == {"delivery_id": delivery.pk} and first.queue_name == "webhooks"
    assert receiver.received == []  # nothing is sent by the web side

    await work_off()
    [failed_attempt] = receiver.received
    assert failed_attempt.status == 500 and failed_attempt.signature_valid
    first_job, retry_job = await sync_to_async(attempt_jobs)()
    assert retry_job.status == "todo" and retry_job.scheduled_at > first_job.scheduled_at

    await asyncio.sleep(0.3)  # the back-off
    await work_off()
    assert [received.status for received in receiver.received] == [500, 200]
    await delivery.arefresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2
    assert [attempt["status_code"] for attempt in delivery.attempt_log] == [500, 200]


async def test_the_periodic_sweep_defers_the_jobs_of_overdue_deliveries(admin_user, receiver):
    from deployments.webhook_tasks import webhook_sweep

    webhook = await sync_to_async(make_webhook)(admin_user.organization, url=receiver.url)
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    lost = await sync_to_async(make_delivery)(webhook, next_attempt_at=long_ago)
    await sync_to_async(make_delivery)(webhook)  # due now, not overdue: its job is presumably coming
    assert await webhook_sweep(timestamp=0) == 1
    [job] = await sync_to_async(attempt_jobs)()
    assert job.args == {"delivery_id": lost.pk}
    assert await webhook_sweep(timestamp=0) == 1 and len(await sync_to_async(attempt_jobs)()) == 1  # locked
