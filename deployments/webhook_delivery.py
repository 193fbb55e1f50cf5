"""Sending webhook deliveries: attempts, retries with back-off, and disabling what keeps failing.

Every attempt is recorded on its delivery (`attempt_log`, the last status code, a bounded snippet
of the answer, the error). A 2xx answer delivers it; anything else (another status, a redirect,
which is never followed, a timeout, an address the SSRF rules refuse) is tried again after the
next wait of `settings.WEBHOOK_RETRY_DELAYS_S` (+-10% jitter); once those are used up the delivery
has failed. `settings.WEBHOOK_DISABLE_AFTER_FAILURES` deliveries failed in a row disable the
webhook (`webhooks.webhook_disable`, audited with the system as actor); a delivered one resets
the count.

Who makes the attempts:

- inline (the default): each server process's sweeper (`webhook_sweeping_start`, started with
  the server's loop), woken at once by the deliveries its process records, at the time of the next
  retry it knows of, and every `settings.WEBHOOK_SWEEP_EVERY_S` for those other processes left
  behind (so a restart picks up what was due). Its database work borrows a connection per step,
  never holding one while a receiver is slow to answer.
- queue (`STUDIO_EXECUTION=queue`): the worker pool, one job per attempt, deferred with
  `schedule_in` for a retry (see `deployments.webhook_tasks`).

Settled deliveries older than `settings.WEBHOOK_DELIVERY_RETENTION_DAYS` are pruned
(`webhooks.webhook_deliveries_prune`): by each sweeper when it starts and hourly after, or daily by
the worker pool's periodic task when queued.

An attempt first claims its delivery (a conditional UPDATE moves `next_attempt_at` past the
attempt's deadline), so two processes never make the same attempt, and one that dies mid-attempt
leaves the delivery due again once the claim runs out. Delivery is at least once: receivers dedupe
on `Studio-Delivery`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from deployments.models import Webhook, WebhookDelivery
from deployments.webhooks import (
    known_unsubscribed,
    webhook_body,
    webhook_deliveries_prune,
    webhook_disable,
    webhook_event_record,
    webhook_headers,
    webhook_secret,
)
from observability.queue import queue_enabled
from providers.llm.transport import VettingResolver
from providers.llm.types import LLMError
from providers.llm.urlsafety import check_base_url
from studio.background import spawn

logger = logging.getLogger(__name__)

R = TypeVar("R")

CLAIM_MARGIN_S = 30.0  # a claim outlives the attempt's deadline by this much
CONNECT_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 50  # attempts one process makes at once
PRUNE_EVERY_S = 3600.0  # how often a sweeper prunes old deliveries
SNIPPET_BYTES = 2048
JITTER = 0.1

PENDING, DELIVERED, FAILED = (
    WebhookDelivery.Status.PENDING,
    WebhookDelivery.Status.DELIVERED,
    WebhookDelivery.Status.FAILED,
)


@dataclass(frozen=True)
class Attempt:
    """A claimed delivery, with what it takes to send it."""

    delivery_id: str
    webhook_id: str
    url: str
    event: str
    payload: dict[str, Any]
    number: int  # 1 for the first attempt
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    snippet: str
    error: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


# ---- the ledger's events -----------------------------------------------------------------------


async def on_ledger_event(sender, *, organization_id: str, event: str, data, **kwargs) -> None:
    """The `ledger_event` receiver (connected in DeploymentsConfig.ready): records the deliveries
    of the event and has them sent. Nothing to do costs a dictionary lookup; it never fails its
    sender (a failure is logged)."""
    if not organization_id or known_unsubscribed(organization_id, event):
        return
    try:
        recorded = await sync_to_async(webhook_event_record)(
            organization_id=organization_id, event=event, data=data
        )
        if recorded:
            await deliveries_dispatch(recorded)
    except Exception:
        logger.exception("Recording the %s webhook deliveries of %s failed", event, organization_id)


async def deliveries_dispatch(delivery_ids: list[str]) -> None:
    """Has new deliveries sent now: by the worker pool when runs are queued, else by this
    process's sweeper (without one, the next sweep of any server process sends them)."""
    if queue_enabled():
        from deployments.webhook_tasks import attempts_defer

        await attempts_defer(delivery_ids)
    elif _sweeper is not None:
        _sweeper.kick()


# ---- one attempt -------------------------------------------------------------------------------


def attempt_claim(delivery_id: str) -> Attempt | None:
    """Claims the delivery if it is pending and due; None when it is not (or no longer) to be sent."""
    now = timezone.now()
    lease = dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_S + CLAIM_MARGIN_S)
    due = WebhookDelivery.objects.filter(pk=delivery_id, status=PENDING, next_attempt_at__lte=now)
    if not due.update(next_attempt_at=now + lease):
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its webhook was deleted meanwhile
        return None
    webhook = delivery.webhook
    if not webhook.is_active:  # disabled while this delivery was being recorded
        delivery.status, delivery.next_attempt_at, delivery.error = FAILED, None, "webhook disabled"
        delivery.save(update_fields=["status", "next_attempt_at", "error"])
        return None
    return Attempt(
        delivery_id=delivery.pk,
        webhook_id=webhook.pk,
        url=webhook.url,
        event=delivery.event,
        payload=delivery.payload,
        number=delivery.attempts + 1,
        secret=webhook_secret(webhook),
    )


async def attempt_make(attempt: Attempt) -> dt.datetime | None:
    """Sends a claimed delivery once and records how it went; the time of its next attempt, or
    None when it is settled (delivered, failed for good, or gone)."""
    outcome = await _send(attempt)
    return await _on_own_connection(_attempt_record, attempt, outcome)


async def _send(attempt: Attempt) -> Outcome:
    body = webhook_body(attempt.payload)
    headers = webhook_headers(
        secret=attempt.secret,
        event=attempt.event,
        delivery_id=attempt.delivery_id,
        body=body,
        timestamp=int(time.time()),
    )
    allow_private = settings.ALLOW_PRIVATE_PROVIDER_URLS
    timeout_s = settings.WEBHOOK_TIMEOUT_S
    started = time.perf_counter()
    status_code, snippet, error = None, "", ""
    try:
        await check_base_url(attempt.url, allow_private=allow_private)  # IP literals, scheme
        # The connection resolves the host again and keeps to the vetted addresses (DNS rebinding).
        resolver = VettingResolver(allow_private=allow_private)
        connector = aiohttp.TCPConnector(resolver=resolver, force_close=True)
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, CONNECT_TIMEOUT_S))
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
            session.post(attempt.url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            status_code = response.status
            raw = await response.content.read(SNIPPET_BYTES)
            snippet = raw.decode("utf-8", "replace")[: WebhookDelivery.SNIPPET_CHARS]
        if 300 <= status_code < 400:
            error = f"HTTP {status_code}: redirects are not followed"
        elif not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except LLMError as refused:  # the SSRF rules refuse the address, or the host does not resolve
        error = f"refused: {refused.message}"
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError) as failed:
        error = f"{type(failed).__name__}: {failed}"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return Outcome(status_code, snippet, error[:300], duration_ms)


def _attempt_record(attempt: Attempt, outcome: Outcome) -> dt.datetime | None:
    now = timezone.now()
    with transaction.atomic():
        # The webhook's row first, the delivery's second, always: disabling a webhook updates
        # its pending deliveries, so the opposite order could deadlock with it.
        webhook = Webhook.objects.select_for_update().filter(pk=attempt.webhook_id).first()
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=attempt.delivery_id).first()
        if webhook is None or delivery is None:
            return None
        delivery.attempts += 1
        delivery.attempt_log = [*delivery.attempt_log, _log_entry(now, outcome)]
        delivery.status_code, delivery.response_snippet, delivery.error = (
            outcome.status_code,
            outcome.snippet,
            outcome.error,
        )
        _settle(webhook, delivery, outcome, now)
        delivery.save(
            update_fields=[
                "attempts",
                "attempt_log",
                "status_code",
                "response_snippet",
                "error",
                "status",
                "next_attempt_at",
                "delivered_at",
            ]
        )
    return delivery.next_attempt_at


def _log_entry(now: dt.datetime, outcome: Outcome) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "status_code": outcome.status_code,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
    }


def _settle(webhook: Webhook, delivery: WebhookDelivery, outcome: Outcome, now: dt.datetime) -> None:
    """The delivery's state after this attempt, and the webhook's count of failures in a row."""
    delays = settings.WEBHOOK_RETRY_DELAYS_S
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
        if webhook.consecutive_failures:
            webhook.consecutive_failures = 0
            webhook.save(update_fields=["consecutive_failures"])
    elif delivery.status != PENDING:  # given up meanwhile (its webhook was disabled)
        delivery.next_attempt_at = None
    elif delivery.attempts <= len(delays):
        wait_s = delays[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        delivery.next_attempt_at = now + dt.timedelta(seconds=wait_s)
    else:
        delivery.status, delivery.next_attempt_at = FAILED, None
        _count_failure(webhook)


def _count_failure(webhook: Webhook) -> None:
    webhook.consecutive_failures += 1
    webhook.save(update_fields=["consecutive_failures"])
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if limit and webhook.is_active and webhook.consecutive_failures >= limit:
        reason = f"{webhook.consecutive_failures} deliveries in a row failed"
        webhook_disable(webhook_id=webhook.pk, reason=reason)


async def _on_own_connection(fn: Callable[..., R], *args: Any) -> R:
    """`fn(*args)` on a database connection of its own, given back when it returns: an attempt
    holds none while it waits for a receiver, so slow receivers cannot drain the server's pool."""
    return await spawn(sync_to_async(fn), *args, name=f"webhooks: {fn.__name__}")


# ---- the sweeper (inline execution) ------------------------------------------------------------


def _claim_due(limit: int) -> list[Attempt]:
    due = WebhookDelivery.objects.filter(status=PENDING, next_attempt_at__lte=timezone.now())
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    return [attempt for attempt in map(attempt_claim, ids) if attempt is not None]


def _next_due() -> dt.datetime | None:
    pending = WebhookDelivery.objects.filter(status=PENDING, next_attempt_at__isnull=False)
    return pending.aggregate(due=Min("next_attempt_at"))["due"]


class _Sweeper:
    """Sends the due deliveries of the whole instance from one event loop, up to MAX_IN_FLIGHT at
    once; woken by `kick` (from any thread), at the next retry it knows of, and every `every_s`.
    Its first round and one every PRUNE_EVERY_S after also prune old deliveries."""

    def __init__(self, every_s: float):
        self.loop = asyncio.get_running_loop()
        self.every_s = every_s
        self.wake = asyncio.Event()
        self.in_flight: set[asyncio.Task] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.prune_at = self.loop.time()
        self.task = self.loop.create_task(self._run(), name="webhook sweeper", context=contextvars.Context())

    def kick(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop is closed: the process is stopping
            self.loop.call_soon_threadsafe(self.wake.set)

    def wake_at(self, when: dt.datetime) -> None:
        delay_s = max(0.0, (when - timezone.now()).total_seconds())
        due = self.loop.time() + delay_s
        if self.timer is not None and self.timer.when() <= due:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(due, self._timer_fired)

    def _timer_fired(self) -> None:
        self.timer = None
        self.wake.set()

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self._round()
            except Exception:  # the database may be down for a while: try again next time
                logger.exception("Sending due webhook deliveries failed")
            try:
                await self._prune_when_due()
            except Exception:
                logger.exception("Pruning old webhook deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.every_s or None)

    async def _round(self) -> None:
        room = MAX_IN_FLIGHT - len(self.in_flight)
        if room > 0:
            for attempt in await _on_own_connection(_claim_due, room):
                task = self.loop.create_task(self._attempt(attempt), name=f"webhook {attempt.delivery_id}")
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
        next_due = await _on_own_connection(_next_due)
        if next_due is not None:
            self.wake_at(next_due)

    async def _prune_when_due(self) -> None:
        if self.loop.time() < self.prune_at:
            return
        self.prune_at = self.loop.time() + PRUNE_EVERY_S
        pruned = await _on_own_connection(webhook_deliveries_prune)
        if pruned:
            logger.info("Pruned %d webhook deliveries", pruned)

    async def _attempt(self, attempt: Attempt) -> None:
        try:
            next_at = await attempt_make(attempt)
        except Exception:
            logger.exception("Webhook delivery %s failed to be recorded", attempt.delivery_id)
            return
        if next_at is not None:
            self.wake_at(next_at)
        if len(self.in_flight) >= MAX_IN_FLIGHT:  # the last round had no room for every due one
            self.wake.set()

    async def stop(self) -> None:
        """Stops sweeping; the attempts in flight end (and are recorded) first, within their
        deadline."""
        if self.timer is not None:
            self.timer.cancel()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self.in_flight:
            _, late = await asyncio.wait(self.in_flight, timeout=settings.WEBHOOK_TIMEOUT_S + CLAIM_MARGIN_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


_sweeper: _Sweeper | None = None  # this process's, on its server's loop


def webhook_sweeping_start() -> _Sweeper | None:
    """Starts this process's sweeper on the running loop, once (again after its loop closed);
    None when the worker pool sends deliveries (`STUDIO_EXECUTION=queue`)."""
    global _sweeper
    if queue_enabled():
        return None
    if _sweeper is None or _sweeper.loop.is_closed() or _sweeper.task.done():
        _sweeper = _Sweeper(settings.WEBHOOK_SWEEP_EVERY_S)
    return _sweeper


async def webhook_sweeping_stop() -> None:
    """Stops this process's sweeper (tests start one per event loop)."""
    global _sweeper
    sweeper, _sweeper = _sweeper, None
    if sweeper is not None:
        await sweeper.stop()
