"""Operator surfaces: health, OpenAPI docs, Prometheus metrics, admin, deploy checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import Organization, User
from observability.models import AuditLog

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_health_reports_the_database(api_client, settings):
    response = api_client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_health_is_503_when_redis_is_down(api_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL}
    }
    response = api_client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("down")


def test_openapi_schema_documents_the_endpoints(api_client):
    response = api_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    for path in ("/api/auth/register", "/api/auth/login", "/api/users", "/api/users/{id}", "/api/audit"):
        assert path in schema["paths"], path
    register = schema["paths"]["/api/auth/register"]["post"]
    assert "201" in register["responses"] and "requestBody" in register
    assert api_client.get("/api/docs").status_code == 200


def test_metrics_need_staff_or_the_metrics_token(api_client, settings, member):
    settings.METRICS_TOKEN = "scrape-token-123"
    assert api_client.get("/metrics").status_code == 403
    assert api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    scraped = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert scraped.status_code == 200 and b"django_http_requests" in scraped.content
    staff = User.objects.create_superuser("ops@example.com", "ops-password-123")
    browser = Client()
    browser.force_login(staff)
    assert browser.get("/metrics").status_code == 200


def test_admin_pages_render_for_operators(operator_browser, member):
    from observability.models import Run, Span

    run = Run.objects.create(organization=member.organization, kind="agent_test")
    span = Span.objects.create(run=run, organization=member.organization, kind="run", name="root")
    for path in (
        "/admin/observability/run/",
        f"/admin/observability/run/{run.pk}/change/",
        f"/admin/observability/span/{span.pk}/change/",
        "/admin/",
        "/admin/accounts/organization/",
        f"/admin/accounts/organization/{member.organization_id}/change/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{member.pk}/change/",
        "/admin/observability/auditlog/",
    ):
        assert operator_browser.get(path).status_code == 200, path


def test_admin_suspend_action_suspends_and_audits(operator_browser, member):
    response = operator_browser.post(
        "/admin/accounts/organization/",
        {"action": "suspend", "_selected_action": [member.organization_id]},
    )
    assert response.status_code == 302
    assert Organization.objects.get(pk=member.organization_id).status == "suspended"
    assert AuditLog.objects.filter(record_id=member.organization_id, changes={"status": "suspended"}).exists()


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "STUDIO_DEBUG": "0",
        "STUDIO_SECRET_KEY": secrets.token_urlsafe(60),
        "STUDIO_FERNET_KEYS": "6Xs0pr1hV9mYcVBa6PmGdXwqvO6zYk1nQb3YkqUeF0M=",
        "STUDIO_PUBLIC_URL": "https://studio.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_startup_migrates_and_reaps_in_one_command():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("startup", stdout=out)
    assert "No migrations to apply" in out.getvalue()
    assert "stale run(s) reaped" in out.getvalue()
    assert "official" in out.getvalue().lower()
