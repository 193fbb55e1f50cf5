"""The webhooks API: subscribe (the secret shown once), the URL rules, list, deliveries, enable,
delete; admins and owners only, one organization's webhooks invisible to another."""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest

from deployments.models import Webhook, WebhookDelivery
from deployments.webhooks import MAX_WEBHOOKS_PER_ORG, webhook_secret
from observability.models import AuditLog
from tests.api_cases import APIResourceCases, Call
from tests.deployments.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db

EVENTS = ["run.completed", "deployment.stopped"]


def subscribe(client, url="http://127.0.0.1:9/hooks", events=EVENTS, **body):
    return client.post("/api/webhooks", {"url": url, "events": events, **body}, format="json")


@pytest.fixture
def loopback_allowed(settings):
    """Lets webhook URLs point at 127.0.0.1, as provider URLs may in tests (the fake servers)."""
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True


class TestWebhookAPI(APIResourceCases):
    list_path = "/api/webhooks"
    detail_path = "/api/webhooks/{pk}"
    reads = (Call("GET", "/api/webhooks/{pk}/deliveries"),)
    writes = (
        Call("POST", "/api/webhooks", {"url": "https://hooks.example.com/x", "events": ["run.failed"]}),
        Call("DELETE", "/api/webhooks/{pk}"),
        Call("POST", "/api/webhooks/{pk}/enable"),
    )
    read_role = "admin"
    write_role = "admin"
    list_queries = 2  # authentication, the page with its count
    detail_queries = 2  # authentication, the webhook

    def make(self, organization):
        return make_webhook(organization)


def test_subscribing_shows_the_secret_once_and_never_again(admin_client_, loopback_allowed, caplog):
    caplog.set_level(logging.DEBUG)
    response = subscribe(admin_client_, description="Ops channel")
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["id"].startswith("whk-") and body["events"] == EVENTS and body["is_active"] is True
    webhook = Webhook.objects.get(pk=body["id"])
    assert secret not in webhook.secret_encrypted and webhook_secret(webhook) == secret

    listed = admin_client_.get("/api/webhooks").json()
    detail = admin_client_.get(f"/api/webhooks/{webhook.pk}").json()
    deliveries = admin_client_.get(f"/api/webhooks/{webhook.pk}/deliveries").json()
    audit = AuditLog.objects.get(model_name="Webhook", record_id=webhook.pk)
    for later in (listed, detail, deliveries, audit.changes):
        assert secret not in json.dumps(later)
    assert "secret" not in detail and "secret_encrypted" not in detail
    assert audit.operation_type == "create" and audit.changes["url_origin"] == "http://127.0.0.1:9"
    assert secret not in caplog.text


def test_every_event_of_the_contract_can_be_subscribed_to_and_others_cannot(admin_client_, loopback_allowed):
    every = [
        "run.completed",
        "run.failed",
        "approval.requested",
        "approval.resolved",
        "deployment.stopped",
        "budget.exceeded",
    ]
    assert subscribe(admin_client_, events=every).status_code == 201
    for bad in ([], ["run.started"], "run.completed"):
        response = subscribe(admin_client_, events=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "validation_error"
        assert any(path.startswith("events") for path in response.json()["error"]["fields"])
    assert Webhook.objects.count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.7/hooks",  # private
        "https://127.0.0.1/hooks",  # loopback
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::1]/hooks",
        "https://localhost/hooks",  # a name that resolves to loopback
        "http://93.184.215.14/hooks",  # public, but not https
        "https://user:password@93.184.215.14/hooks",  # credentials in the URL
    ],
)
def test_a_url_the_ssrf_rules_refuse_is_a_400_and_nothing_is_stored(admin_client_, url):
    response = subscribe(admin_client_, url=url)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "unsafe_url" and "url" in error["fields"]
    assert not Webhook.objects.exists() and not AuditLog.objects.filter(model_name="Webhook").exists()


def test_an_organization_has_a_bounded_number_of_webhooks(admin_client_, admin_user, loopback_allowed):
    for _ in range(MAX_WEBHOOKS_PER_ORG):
        make_webhook(admin_user.organization)
    response = subscribe(admin_client_)
    assert response.status_code == 409 and response.json()["error"]["code"] == "limit_reached"
    assert Webhook.objects.count() == MAX_WEBHOOKS_PER_ORG


def test_deleting_a_webhook_deletes_its_deliveries_and_is_audited(admin_client_, admin_user):
    webhook = make_webhook(admin_user.organization)
    make_delivery(webhook)
    response = admin_client_.delete(f"/api/webhooks/{webhook.pk}")
    assert response.status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    audit = AuditLog.objects.get(model_name="Webhook", operation_type="delete")
    assert audit.record_id == webhook.pk and audit.user_id == admin_user.pk


def test_deliveries_are_listed_newest_first_with_status_codes_and_attempts(admin_client_, admin_user):
    webhook = make_webhook(admin_user.organization)
    attempts = [
        {"at": "2026-01-01T00:00:00+00:00", "status_code": 500, "error": "HTTP 500", "duration_ms": 12},
        {"at": "2026-01-01T00:00:10+00:00", "status_code": 200, "error": "", "duration_ms": 9},
    ]
    failed = make_delivery(webhook, status="failed", attempts=1, status_code=500, error="HTTP 500")
    delivered = make_delivery(webhook, status="delivered", attempts=2, status_code=200, attempt_log=attempts)
    body = admin_client_.get(f"/api/webhooks/{webhook.pk}/deliveries").json()
    assert body["count"] == 2 and [row["id"] for row in body["results"]] == [delivered.pk, failed.pk]
    latest = body["results"][0]
    assert latest["status"] == "delivered" and latest["status_code"] == 200 and latest["attempts"] == 2
    assert [attempt["status_code"] for attempt in latest["attempt_log"]] == [500, 200]
    only_failed = admin_client_.get(f"/api/webhooks/{webhook.pk}/deliveries?status=failed").json()
    assert [row["id"] for row in only_failed["results"]] == [failed.pk]
    bad = admin_client_.get(f"/api/webhooks/{webhook.pk}/deliveries?status=lost")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("n", [1, 15])
def test_the_deliveries_list_query_count_is_constant(admin_client_, admin_user, django_assert_num_queries, n):
    webhook = make_webhook(admin_user.organization)
    for _ in range(n):
        make_delivery(webhook)
    with django_assert_num_queries(3):  # authentication, the webhook, the page with its count
        response = admin_client_.get(f"/api/webhooks/{webhook.pk}/deliveries?limit=100")
    assert response.json()["count"] == n


def test_a_disabled_webhook_is_enabled_again_with_its_failures_reset(admin_client_, admin_user):
    webhook = make_webhook(
        admin_user.organization, is_active=False, consecutive_failures=5, disabled_reason="5 failed"
    )
    response = admin_client_.post(f"/api/webhooks/{webhook.pk}/enable")
    assert response.status_code == 200
    assert response.json()["is_active"] is True and response.json()["consecutive_failures"] == 0
    webhook.refresh_from_db()
    assert webhook.is_active and webhook.disabled_reason == "" and webhook.disabled_at is None
    assert AuditLog.objects.filter(
        model_name="Webhook", operation_type="enable", record_id=webhook.pk
    ).exists()


def test_members_neither_see_nor_subscribe(member, loopback_allowed):
    from tests.conftest import client_for

    client = client_for(member)
    assert client.get("/api/webhooks").status_code == 403
    assert subscribe(client).status_code == 403
    assert not Webhook.objects.exists()


def test_rotating_the_fernet_keys_keeps_every_secret(admin_user, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    webhook = make_webhook(admin_user.organization, secret="whsec_kept")
    old_keys = list(settings.FERNET_KEYS)
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), *old_keys]
    call_command("rotate_secrets", stdout=StringIO())
    settings.FERNET_KEYS = settings.FERNET_KEYS[:1]  # the old keys dropped
    webhook.refresh_from_db()
    assert webhook_secret(webhook) == "whsec_kept"
    audit = AuditLog.objects.get(model_name="Webhook", operation_type="rotate_keys")
    assert audit.changes == {"rotated": 1} and audit.user_id is None


def test_admin_pages_show_webhooks_and_deliveries_without_the_secret(operator_browser, admin_user):
    webhook = make_webhook(admin_user.organization, secret="whsec_never-shown", is_active=False)
    delivery = make_delivery(webhook, status="failed", attempts=3, status_code=500, error="HTTP 500")
    for path in (
        "/admin/deployments/webhook/",
        f"/admin/deployments/webhook/{webhook.pk}/change/",
        "/admin/deployments/webhookdelivery/",
        f"/admin/deployments/webhookdelivery/{delivery.pk}/change/",
    ):
        response = operator_browser.get(path)
        assert response.status_code == 200, path
        assert b"whsec_never-shown" not in response.content
        assert webhook.secret_encrypted.encode() not in response.content

    response = operator_browser.post(
        "/admin/deployments/webhook/",
        {"action": "enable_webhooks", "_selected_action": [webhook.pk]},
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.is_active
    assert AuditLog.objects.filter(
        model_name="Webhook", operation_type="enable", record_id=webhook.pk
    ).exists()
