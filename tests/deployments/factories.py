"""Webhooks and their deliveries for tests, stored directly (no URL check, no audit row)."""

from __future__ import annotations

from django.utils import timezone

from deployments.models import WEBHOOK_EVENTS, Webhook, WebhookDelivery
from providers.crypto import encrypt_secret

SECRET = "whsec_test-secret"


def make_webhook(
    organization, *, url="https://hooks.example.com/studio", events=WEBHOOK_EVENTS, secret=SECRET, **fields
) -> Webhook:
    return Webhook.objects.create(
        organization=organization,
        url=url,
        events=list(events),
        secret_encrypted=encrypt_secret(secret),
        **fields,
    )


def make_delivery(webhook: Webhook, *, event="run.completed", **fields) -> WebhookDelivery:
    payload = {"id": "evt-test", "type": event, "organization_id": webhook.organization_id, "data": {}}
    fields.setdefault("next_attempt_at", timezone.now())
    return WebhookDelivery.objects.create(webhook=webhook, event=event, payload=payload, **fields)
