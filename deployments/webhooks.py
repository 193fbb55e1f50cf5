"""Outbound webhooks: an organization's endpoints, the events they subscribe to, and how each
event becomes a signed delivery (sending and retrying them: `deployments.webhook_delivery`).

A webhook's URL follows the rules of provider base URLs (https to public addresses only, unless
`STUDIO_ALLOW_PRIVATE_PROVIDER_URLS`; checked at save and again at each attempt, connections pinned
to vetted addresses, no redirects). Its secret is generated here, returned once by
`webhook_create` and stored only encrypted (Fernet, like provider keys): no later response, log or
audit row holds it.

Events come from the ledger's `ledger_event` signal (observability/signals.py), sent after commit
by the run supervisor (`run.completed`, `run.failed`), the budgets (`budget.exceeded`) and
deployments (`deployment.stopped`); `approval.*` events can be subscribed to already. The
receiver sits on the run's hot path, so it first asks a per-process memo whether the organization
has an enabled webhook for the event at all (`SUBSCRIPTIONS_TTL_S`; a write here forgets the
organization's entry at once, other processes see it within the TTL). `budget.exceeded` is sent to
a webhook once per budget counter (its subject and month), however many calls the spent budget
refuses: the first refusal of the month adds a key to the shared cache (Redis: one atomic SET NX
across every process) that expires when the month does (`ONCE_PER_WINDOW`).

Signing (like Stripe's): `Studio-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" keyed with the secret>`, with `Studio-Event` (the event type) and `Studio-Delivery`
(the delivery id, the same on every retry: receivers dedupe on it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from deployments.models import WEBHOOK_EVENTS, Webhook, WebhookDelivery
from providers.crypto import decrypt_secret, encrypt_secret, secrets_rotate
from providers.llm.types import LLMError
from providers.llm.urlsafety import check_base_url_sync, url_origin
from studio.api.errors import ApiError
from studio.audit import audit_record
from studio.ids import new_id

MAX_WEBHOOKS_PER_ORG = 20  # bounds the deliveries one event fans out to
MAX_BODY_BYTES = 256 * 1024  # a run's output past this is left out of the body (`output_omitted`)
SUBSCRIPTIONS_TTL_S = 10.0
SECRET_PREFIX = "whsec_"

SIGNATURE_HEADER = "Studio-Signature"
EVENT_HEADER = "Studio-Event"
DELIVERY_HEADER = "Studio-Delivery"
USER_AGENT = "KaizenStudio-Webhooks/1"


# ---- writes ------------------------------------------------------------------------------------


def webhook_create(*, user, url: str, events: Iterable[str], description: str = "") -> tuple[Webhook, str]:
    """Stores a webhook of the user's organization; returns it and its signing secret, shown this
    once. A URL that may not be called is a 400 `unsafe_url`; past `MAX_WEBHOOKS_PER_ORG`, a 409."""
    events = _events_checked(events)
    webhook_url_check(url)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        if Webhook.objects.filter(organization_id=user.organization_id).count() >= MAX_WEBHOOKS_PER_ORG:
            message = f"An organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks; delete one first."
            raise ApiError(409, "limit_reached", message)
        webhook = Webhook.objects.create(
            organization_id=user.organization_id,
            url=url,
            events=events,
            description=description,
            secret_encrypted=encrypt_secret(secret),
            created_by=user,
        )
        audit_record(
            actor=user,
            organization_id=webhook.organization_id,
            operation="create",
            instance=webhook,
            changes=_audited(webhook),
        )
        _forget_on_commit(webhook.organization_id)
    return webhook, secret


def webhook_delete(*, user, webhook: Webhook) -> None:
    """Deletes the webhook with its deliveries (pending ones are not sent)."""
    with transaction.atomic():
        audit_record(
            actor=user,
            organization_id=webhook.organization_id,
            operation="delete",
            instance=webhook,
            changes=_audited(webhook),
        )
        webhook.delete()
        _forget_on_commit(webhook.organization_id)


def webhook_enable(*, user, webhook: Webhook) -> Webhook:
    """Turns a disabled webhook back on, its count of failed deliveries reset."""
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        if webhook.is_active:
            return webhook
        webhook.is_active, webhook.consecutive_failures = True, 0
        webhook.disabled_at, webhook.disabled_reason = None, ""
        webhook.save(update_fields=["is_active", "consecutive_failures", "disabled_at", "disabled_reason"])
        audit_record(
            actor=user,
            organization_id=webhook.organization_id,
            operation="enable",
            instance=webhook,
            changes={"is_active": True},
        )
        _forget_on_commit(webhook.organization_id)
    return webhook


def webhook_disable(*, webhook_id: str, reason: str) -> bool:
    """Disables the webhook (the system does, after repeated failure) and gives up its pending
    deliveries; audited with no actor. False when it was disabled already. Call it in a
    transaction."""
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id, is_active=True).first()
    if webhook is None:
        return False
    webhook.is_active, webhook.disabled_at, webhook.disabled_reason = False, timezone.now(), reason
    webhook.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    webhook.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None, error="webhook disabled"
    )
    audit_record(
        actor=None,
        organization_id=webhook.organization_id,
        operation="disable",
        instance=webhook,
        changes={"is_active": False, "reason": reason, "consecutive_failures": webhook.consecutive_failures},
    )
    _forget_on_commit(webhook.organization_id)
    return True


def webhook_url_check(url: str) -> None:
    """Refuses (400 `unsafe_url`) a URL that may not be called: the provider URL rules, plus no
    user name or password and no fragment."""
    parts = urlsplit(url)
    if "@" in parts.netloc or parts.fragment:
        _refuse_url("a webhook URL may not contain a user name, password or fragment")
    try:
        check_base_url_sync(url, allow_private=settings.ALLOW_PRIVATE_PROVIDER_URLS)
    except LLMError as error:  # unsafe, or a host that does not resolve and so cannot be vetted
        _refuse_url(error.message)


def _refuse_url(reason: str) -> None:
    message = f"The webhook URL is refused (the rules of provider URLs apply): {reason}."
    raise ApiError(400, "unsafe_url", message, fields={"url": [message]})


def _events_checked(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [event for event in chosen if event not in WEBHOOK_EVENTS]
    if unknown or not chosen:
        message = f"Choose events among {', '.join(WEBHOOK_EVENTS)}."
        raise ApiError(400, "validation_error", message, fields={"events": [message]})
    return chosen


def _audited(webhook: Webhook) -> dict[str, Any]:
    """What an audit row says of a webhook: the URL's origin only (a hook URL's path is often a
    credential itself), never the secret."""
    origin = url_origin(webhook.url)
    return {"url_origin": origin, "events": webhook.events, "description": webhook.description}


# ---- reads -------------------------------------------------------------------------------------


def webhook_list(*, organization) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=organization)


def webhook_deliveries(*, webhook: Webhook, status: str | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(webhook=webhook)
    return deliveries.filter(status=status) if status else deliveries


def webhook_secret(webhook: Webhook) -> str:
    return decrypt_secret(webhook.secret_encrypted)


# ---- signing -----------------------------------------------------------------------------------


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed) for a payload: compact JSON, keys sorted."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body`, keyed with the webhook's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_headers(*, secret: str, event: str, delivery_id: str, body: bytes, timestamp: int) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        SIGNATURE_HEADER: f"t={timestamp},v1={webhook_signature(secret, timestamp, body)}",
    }


# ---- events become deliveries ------------------------------------------------------------------

# organization id -> (monotonic expiry, the events its enabled webhooks subscribe to)
_subscriptions: dict[str, tuple[float, frozenset[str]]] = {}


def known_unsubscribed(organization_id: str, event: str) -> bool:
    entry = _subscriptions.get(organization_id)
    return entry is not None and entry[0] > time.monotonic() and event not in entry[1]


def subscriptions_forget(organization_id: str) -> None:
    _subscriptions.pop(organization_id, None)


def _forget_on_commit(organization_id: str) -> None:
    transaction.on_commit(lambda: subscriptions_forget(organization_id))


def _budget_month(data: Mapping[str, Any]) -> tuple[str, dt.datetime]:
    """A budget counter's window: its subject and month, until the next month starts (UTC)."""
    month = dt.date.fromisoformat(data["month"])
    next_month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return f"{data['subject']}:{month.isoformat()}", dt.datetime.combine(next_month, dt.time(), tzinfo=dt.UTC)


# Events a webhook is sent once per window: event -> (its data -> the window's key and end).
ONCE_PER_WINDOW = {"budget.exceeded": _budget_month}
WINDOW_MARGIN_S = 3600  # a window's key outlives its end by this much (clocks of other processes)


def _first_in_window(hooks: list[Webhook], event: str, data: Mapping[str, Any]) -> list[Webhook]:
    """The hooks not sent this event in its window yet, each marked sent (see the module doc). The
    cache down: all of them (a duplicate rather than a loss)."""
    window, ends_at = ONCE_PER_WINDOW[event](data)
    timeout = max(1, int((ends_at - timezone.now()).total_seconds())) + WINDOW_MARGIN_S
    first = []
    for hook in hooks:
        try:
            added = cache.add(f"webhook-once:{hook.pk}:{event}:{window}", 1, timeout=timeout)
        except Exception:
            added = True
        if added:
            first.append(hook)
    return first


def webhook_event_record(*, organization_id: str, event: str, data: Mapping[str, Any]) -> list[str]:
    """Stores one pending delivery of the event per enabled webhook of the organization that
    subscribes to it (due at once; for the events of ONCE_PER_WINDOW, only the first of their
    window); returns their ids. Refreshes the organization's memo."""
    hooks = list(Webhook.objects.filter(organization_id=organization_id, is_active=True).only("id", "events"))
    subscribed = frozenset(name for hook in hooks for name in hook.events)
    _subscriptions[organization_id] = (time.monotonic() + SUBSCRIPTIONS_TTL_S, subscribed)
    targets = [hook for hook in hooks if event in hook.events]
    if targets and event in ONCE_PER_WINDOW:
        targets = _first_in_window(targets, event, data)
    if not targets:
        return []
    now = timezone.now()
    payload = _bounded(
        {
            "id": new_id("evt"),
            "type": event,
            "created_at": now.isoformat(),
            "organization_id": organization_id,
            "data": dict(data),
        }
    )
    deliveries = [
        WebhookDelivery(webhook=hook, event=event, payload=payload, next_attempt_at=now) for hook in targets
    ]
    WebhookDelivery.objects.bulk_create(deliveries)
    return [delivery.pk for delivery in deliveries]


def _bounded(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload, without the run's output when the body would be larger than MAX_BODY_BYTES."""
    if len(webhook_body(payload)) <= MAX_BODY_BYTES or "output" not in payload["data"]:
        return payload
    data = {**payload["data"], "output": None, "output_omitted": True}
    return {**payload, "data": data}


# ---- operations --------------------------------------------------------------------------------

PRUNE_BATCH_SIZE = 1000


def webhook_deliveries_prune(*, now: dt.datetime | None = None, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Deletes the settled deliveries (delivered or failed) created more than
    `settings.WEBHOOK_DELIVERY_RETENTION_DAYS` ago (0: none), one webhook and one small batch at a
    time (its index on created_at); pending ones are still owed and stay. How many went."""
    days = settings.WEBHOOK_DELIVERY_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    settled = [WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED]
    pruned = 0
    for webhook_id in list(Webhook.objects.order_by("pk").values_list("pk", flat=True)):
        old = WebhookDelivery.objects.filter(webhook_id=webhook_id, created_at__lt=cutoff, status__in=settled)
        while batch := list(old.order_by("created_at").values_list("pk", flat=True)[:batch_size]):
            WebhookDelivery.objects.filter(pk__in=batch).delete()
            pruned += len(batch)
    return pruned


@transaction.atomic
def webhook_secrets_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypts every webhook secret with the newest Fernet key (`secrets_rotate`); how many."""
    return secrets_rotate(Webhook.objects.all(), "secret_encrypted", batch_size=batch_size)
