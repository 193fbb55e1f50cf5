"""The deployments admin: read-only pages (keys by prefix only) and audited stop/start actions."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from deployments.models import Deployment
from observability.models import AuditLog
from tests.deployments.helpers import deploy

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return User.objects.create_superuser("root@example.com", "root-password-123")


@pytest.fixture
def browser(operator):
    client = Client()
    client.force_login(operator)
    return client


def test_the_change_page_shows_key_prefixes_and_never_a_key(browser, admin_user):
    deployment, secret = deploy(admin_user, name="shown")
    page = browser.get(f"/admin/deployments/deployment/{deployment.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert deployment.keys.get().prefix in html and secret not in html
    assert browser.get("/admin/deployments/deployment/add/").status_code == 403


def test_stop_and_start_actions_change_status_and_are_audited(browser, operator, admin_user):
    first, _ = deploy(admin_user, name="first")
    second, _ = deploy(admin_user, name="second")
    url = "/admin/deployments/deployment/"
    response = browser.post(url, {"action": "stop", "_selected_action": [first.pk, second.pk]})
    assert response.status_code == 302
    assert set(Deployment.objects.values_list("status", flat=True)) == {"stopped"}
    browser.post(url, {"action": "start", "_selected_action": [first.pk]})
    assert Deployment.objects.get(pk=first.pk).status == "running"
    assert Deployment.objects.get(pk=second.pk).status == "stopped"
    stops = AuditLog.objects.filter(operation_type="stop", user=operator)
    assert sorted(stops.values_list("record_id", flat=True)) == sorted([first.pk, second.pk])
    assert AuditLog.objects.filter(operation_type="start", record_id=first.pk, user=operator).exists()
