"""The operator story: `createoperator` makes an account that works in the admin and the API; an
account without an organization (what `createsuperuser` makes) gets one clear error from the API."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Organization, User
from observability.models import AuditLog
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "operator-passphrase-7"


def create_operator(monkeypatch, *args):
    monkeypatch.setenv("STUDIO_OPERATOR_PASSWORD", PASSWORD)
    call_command("createoperator", *args)


def test_createoperator_makes_an_operator_of_a_new_organization_who_can_use_admin_and_api(
    monkeypatch, api_client
):
    create_operator(monkeypatch, "--email", "Ops@Example.com", "--org", "Studio Ops", "--name", "Ops")
    operator = User.objects.get(email="ops@example.com")
    assert operator.is_staff and operator.is_superuser and operator.role == "owner"
    assert operator.organization.name == "Studio Ops" and operator.organization.slug == "studio-ops"
    assert (
        AuditLog.objects.filter(organization_id=operator.organization_id, operation_type="create").count()
        == 2
    )

    login = api_client.post(
        "/api/auth/login", {"email": "ops@example.com", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 200, login.content
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access']}")
    assert api_client.get("/api/agents").status_code == 200
    assert api_client.get("/api/auth/me").json()["organization"]["slug"] == "studio-ops"
    browser = Client()
    assert browser.login(username="ops@example.com", password=PASSWORD)
    assert browser.get("/admin/").status_code == 200


def test_createoperator_joins_an_existing_organization_by_slug(monkeypatch, organization):
    create_operator(monkeypatch, "--email", "ops@example.com", "--org", organization.slug)
    assert User.objects.get(email="ops@example.com").organization == organization
    assert Organization.objects.count() == 1


def test_createoperator_refuses_a_taken_email_a_weak_password_and_no_password(monkeypatch, member):
    with pytest.raises(CommandError, match="already exists"):
        create_operator(monkeypatch, "--email", member.email, "--org", "Ops")
    monkeypatch.setenv("STUDIO_OPERATOR_PASSWORD", "short")
    with pytest.raises(CommandError, match="password is refused"):
        call_command("createoperator", "--email", "ops@example.com", "--org", "Ops")
    monkeypatch.delenv("STUDIO_OPERATOR_PASSWORD")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="STUDIO_OPERATOR_PASSWORD"):
        call_command("createoperator", "--email", "ops@example.com", "--org", "Ops")
    assert not User.objects.filter(email="ops@example.com").exists()
    assert not Organization.objects.filter(name="Ops").exists()


def test_an_account_without_an_organization_gets_one_clear_error_at_login_and_on_every_request(api_client):
    User.objects.create_superuser("root@example.com", PASSWORD)
    login = api_client.post(
        "/api/auth/login", {"email": "root@example.com", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "no_organization"
    assert "createoperator" in login.json()["error"]["message"]

    token_client = client_for(User.objects.get(email="root@example.com"))
    for path in ("/api/auth/me", "/api/agents", "/api/users", "/api/patterns"):
        response = token_client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"] == login.json()["error"], path
