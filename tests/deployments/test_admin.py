"""The deployments admin: read-only pages (keys by prefix only) and audited stop/start actions."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from deployments.models import Deployment
from observability.models import AuditLog
from tests.deployments.helpers import deploy

pytestmark = pytest.mark.django_db


def test_the_change_page_shows_key_prefixes_and_never_a_key(operator_browser, admin_user):
    deployment, secret = deploy(admin_user, name="shown")
    page = operator_browser.get(f"/admin/deployments/deployment/{deployment.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert deployment.keys.get().prefix in html and secret not in html
    assert operator_browser.get("/admin/deployments/deployment/add/").status_code == 403


def test_stop_and_start_actions_change_status_and_are_audited(operator_browser, operator, admin_user):
    first, _ = deploy(admin_user, name="first")
    second, _ = deploy(admin_user, name="second")
    url = "/admin/deployments/deployment/"
    response = operator_browser.post(url, {"action": "stop", "_selected_action": [first.pk, second.pk]})
    assert response.status_code == 302
    assert set(Deployment.objects.values_list("status", flat=True)) == {"stopped"}
    operator_browser.post(url, {"action": "start", "_selected_action": [first.pk]})
    assert Deployment.objects.get(pk=first.pk).status == "running"
    assert Deployment.objects.get(pk=second.pk).status == "stopped"
    stops = AuditLog.objects.filter(operation_type="stop", user=operator)
    assert sorted(stops.values_list("record_id", flat=True)) == sorted([first.pk, second.pk])
    assert AuditLog.objects.filter(operation_type="start", record_id=first.pk, user=operator).exists()


def test_a_deployments_own_page_stops_and_starts_it_audited(operator_browser, operator, admin_user):
    deployment, _ = deploy(admin_user, name="paged")
    page_url = f"/admin/deployments/deployment/{deployment.pk}/change/"
    stop_url = f"/admin/deployments/deployment/{deployment.pk}/stop/"
    start_url = f"/admin/deployments/deployment/{deployment.pk}/start/"
    page = operator_browser.get(page_url).content.decode()
    assert f'action="{stop_url}"' in page and "Stop deployment" in page

    assert operator_browser.get(stop_url).status_code == 405  # a link followed by accident changes nothing
    stopped = operator_browser.post(stop_url)
    assert stopped.status_code == 302 and stopped["Location"] == page_url
    assert Deployment.objects.get(pk=deployment.pk).status == "stopped"
    page = operator_browser.get(page_url).content.decode()
    assert f'action="{start_url}"' in page and "Start deployment" in page
    assert operator_browser.post(start_url).status_code == 302
    assert Deployment.objects.get(pk=deployment.pk).status == "running"
    audited = AuditLog.objects.filter(record_id=deployment.pk, user=operator)
    assert sorted(audited.values_list("operation_type", flat=True)) == ["start", "stop"]
    assert operator_browser.post("/admin/deployments/deployment/deploy-unknown/stop/").status_code == 404


def test_the_list_shows_channels_what_is_served_and_when_a_key_was_last_used(operator_browser, admin_user):
    used, _ = deploy(admin_user, name="used", channels=["api", "cli"])
    deploy(admin_user, name="unused")
    used.keys.update(last_used_at=timezone.make_aware(dt.datetime(2026, 5, 4, 3, 2)))
    html = operator_browser.get("/admin/deployments/deployment/").content.decode()
    rows = {
        name: row
        for row in re.findall(r"<tr.*?</tr>", html, re.S)
        for name in re.findall(r">(\w+)</a></th>", row)
    }
    assert "api, cli" in rows["used"] and "May 4, 2026" in rows["used"]
    assert "api, mcp, cli" in rows["unused"] and "never" in rows["unused"]
    assert f'href="/admin/agents/agent/{used.agent_id}/change/"' in rows["used"]
