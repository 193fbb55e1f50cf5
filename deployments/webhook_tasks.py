"""Webhook deliveries on the worker pool (`STUDIO_EXECUTION=queue`): one job per attempt.

A new delivery's job is deferred at once; an attempt that failed defers the next one with
`schedule_in` its wait (`settings.WEBHOOK_RETRY_DELAYS_S`). Each delivery has at most one job
waiting (a queueing lock), and a job that finds its delivery not yet due (claimed by another
attempt, or early by another machine's clock) defers itself for when it is. A periodic sweep
defers a job for pending deliveries overdue past a claim's length, whose job was lost (deferred by
a process that died before it could); a daily one prunes old settled deliveries. Registered with
Procrastinate's app wherever it is installed (PostgreSQL): see DeploymentsConfig.ready."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from deployments.models import WebhookDelivery
from deployments.webhook_delivery import CLAIM_MARGIN_S, attempt_claim, attempt_make
from deployments.webhooks import webhook_deliveries_prune
from observability.tasks import MAINTENANCE_QUEUE, cron_every

logger = logging.getLogger(__name__)

WEBHOOKS_QUEUE = "webhooks"
OVERDUE_BATCH = 500


@app.task(name="deployments.webhook_tasks.webhook_attempt", queue=WEBHOOKS_QUEUE)
async def webhook_attempt(delivery_id: str) -> None:
    """One attempt at a delivery, if it is due; the job of the next one when it is not settled."""
    attempt = await sync_to_async(attempt_claim)(delivery_id)
    if attempt is None:
        due_at = await sync_to_async(_pending_due_at)(delivery_id)
        if due_at is not None and due_at > timezone.now():
            await _defer(delivery_id, wait_s=(due_at - timezone.now()).total_seconds())
        return
    next_at = await attempt_make(attempt)
    if next_at is not None:
        await _defer(delivery_id, wait_s=max(0.0, (next_at - timezone.now()).total_seconds()))


async def attempts_defer(delivery_ids: list[str]) -> None:
    """The jobs of new deliveries, due now."""
    for delivery_id in delivery_ids:
        await _defer(delivery_id, wait_s=0.0)


async def _defer(delivery_id: str, *, wait_s: float) -> None:
    job = webhook_attempt.configure(
        queueing_lock=f"webhook-delivery:{delivery_id}", schedule_in={"seconds": wait_s}
    )
    with contextlib.suppress(AlreadyEnqueued):  # its job is waiting already
        await job.defer_async(delivery_id=delivery_id)


def _pending_due_at(delivery_id: str) -> dt.datetime | None:
    row = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
    return row.values_list("next_attempt_at", flat=True).first()


def _overdue_ids() -> list[str]:
    late = timezone.now() - dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_S + CLAIM_MARGIN_S)
    overdue = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lt=late)
    return list(overdue.order_by("next_attempt_at").values_list("pk", flat=True)[:OVERDUE_BATCH])


@app.periodic(cron=cron_every(max(settings.WEBHOOK_SWEEP_EVERY_S, 60)), periodic_id="webhook_sweep")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="webhook_sweep")
async def webhook_sweep(timestamp: int) -> int:
    """Jobs for the pending deliveries that are overdue (their job was lost)."""
    overdue = await sync_to_async(_overdue_ids)()
    if overdue:
        logger.warning("Deferring %d overdue webhook deliveries", len(overdue))
        await attempts_defer(overdue)
    return len(overdue)


@app.periodic(cron="37 3 * * *", periodic_id="prune_webhook_deliveries")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="prune_webhook_deliveries")
async def prune_webhook_deliveries(timestamp: int) -> int:
    """Settled deliveries older than STUDIO_WEBHOOK_DELIVERY_RETENTION_DAYS, deleted daily (as
    `prune_runs` deletes old runs)."""
    return await sync_to_async(webhook_deliveries_prune)()
