"""Registration, login, token lifecycle and per-request account checks."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Organization, User
from observability.models import AuditLog
from tests.accounts.factories import PASSWORD
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

REGISTRATION = {"org_name": "Acme Robotics", "email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}


def register(api_client, **overrides):
    return api_client.post("/api/auth/register", {**REGISTRATION, **overrides}, format="json")


def login(api_client, email, password=PASSWORD, **extra):
    return api_client.post("/api/auth/login", {"email": email, "password": password}, format="json", **extra)


def bearer(api_client, token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


@pytest.mark.argon2
def test_register_creates_the_organization_and_its_owner_with_argon2(api_client):
    response = register(api_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["role"] == "owner"
    assert body["organization"]["name"] == "Acme Robotics"
    assert body["organization"]["slug"] == "acme-robotics"
    assert body["organization"]["id"].startswith("org-") and len(body["organization"]["id"]) == 36
    assert body["access"] and body["refresh"]
    user = User.objects.get(email="ada@example.com")
    assert identify_hasher(user.password).algorithm == "argon2"
    assert AuditLog.objects.filter(organization_id=user.organization_id, operation_type="create").count() == 2


def test_register_rejects_a_weak_password_and_creates_nothing(api_client):
    response = register(api_client, password="password")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "password" in response.json()["error"]["fields"]
    assert not Organization.objects.exists() and not User.objects.exists()


def test_register_with_a_taken_email_is_a_conflict_and_creates_no_organization(api_client):
    assert register(api_client).status_code == 201
    response = register(api_client, org_name="Second", email="ada@example.com")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"
    assert Organization.objects.count() == 1


def test_login_me_refresh_logout_round_trip(api_client):
    register(api_client)
    response = login(api_client, "ada@example.com")
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["user"]["email"] == "ada@example.com"

    me = bearer(api_client, tokens["access"]).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["organization"]["name"] == "Acme Robotics"

    refreshed = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200
    new_refresh = refreshed.json()["refresh"]
    assert new_refresh != tokens["refresh"]

    out = bearer(api_client, refreshed.json()["access"]).post(
        "/api/auth/logout", {"refresh": new_refresh}, format="json"
    )
    assert out.status_code == 204
    again = api_client.post("/api/auth/refresh", {"refresh": new_refresh}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "authentication_failed"
    operations = set(AuditLog.objects.values_list("operation_type", flat=True))
    assert {"login", "logout"} <= operations


def test_a_rotated_refresh_token_cannot_be_reused(api_client):
    tokens = register(api_client).json()
    first = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert first.status_code == 200
    reused = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401


def test_token_lifetimes_are_fifteen_minutes_and_seven_days(api_client):
    tokens = register(api_client).json()
    access = AccessToken(tokens["access"])
    # simplejwt dates an access token's expiry from its refresh token's clock reading and its `iat`
    # from its own, a moment later: across a second boundary the two whole seconds differ by one.
    assert access["exp"] - access["iat"] in (15 * 60 - 1, 15 * 60)
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken(tokens["refresh"])
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600


def test_unknown_email_and_wrong_password_get_the_same_answer(api_client, member):
    unknown = login(api_client, "nobody@example.com")
    wrong = login(api_client, member.email, password="not-the-password-1")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_repeated_login_failures_are_throttled_with_retry_after(api_client, member, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert login(api_client, member.email, password="wrong-password-123").status_code == 401
    blocked = login(api_client, member.email)  # even the right password waits out the window
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert int(blocked["Retry-After"]) >= 1


def _token_with(claims_update=None, header=None, access=None):
    token = access or "x.y.z"
    head, payload, signature = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
    head_data = {**decode(head), **(header or {})}
    body = {**decode(payload), **(claims_update or {})}
    return f"{encode(head_data)}.{encode(body)}.{signature if header is None else ''}"


def test_expired_tampered_and_alg_none_tokens_are_rejected(api_client, member):
    good = str(AccessToken.for_user(member))
    expired = AccessToken.for_user(member)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    tampered = _token_with({"user_id": "user-" + "0" * 32}, access=good)
    alg_none = _token_with({}, header={"alg": "none"}, access=good)
    assert bearer(api_client, good).get("/api/auth/me").status_code == 200
    for bad in (str(expired), tampered, alg_none, "not-a-token"):
        response = bearer(api_client, bad).get("/api/auth/me")
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "authentication_failed"


def test_a_refresh_token_is_not_accepted_as_an_access_token(api_client):
    tokens = register(api_client).json()
    assert bearer(api_client, tokens["refresh"]).get("/api/auth/me").status_code == 401


def test_deactivated_or_removed_users_are_refused_with_a_live_token(member):
    client = client_for(member)
    assert client.get("/api/auth/me").status_code == 200
    User.objects.filter(pk=member.pk).update(status="deactivated")
    assert client.get("/api/auth/me").status_code == 401
    User.objects.filter(pk=member.pk).delete()
    assert client.get("/api/auth/me").status_code == 401


def test_users_of_a_suspended_organization_get_403_everywhere(member, api_client):
    client = client_for(member)
    Organization.objects.filter(pk=member.organization_id).update(status="suspended")
    for path in ("/api/auth/me", "/api/users", "/api/audit"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "permission_denied"
    assert login(api_client, member.email).status_code == 403


def test_me_can_update_own_name_and_preferences(auth_client):
    response = auth_client.patch(
        "/api/auth/me", {"name": "New Name", "preferences": {"theme": "dark"}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["preferences"] == {"theme": "dark"}
    bad = auth_client.patch("/api/auth/me", {"preferences": [1, 2]}, format="json")
    assert bad.status_code == 400
    assert "preferences" in bad.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_a_logout_whose_audit_row_fails_leaves_the_refresh_token_usable(member):
    """The blacklisting and its audit row are one transaction (see the profile case below): a
    logout that could not be audited did not happen, and says so with a 500."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a database that type-checks the audit row's ip_address")
    from accounts.services import tokens_for

    tokens = tokens_for(member)
    client = client_for(member)
    body = {"refresh": tokens["refresh"]}
    out = client.post("/api/auth/logout", body, format="json", REMOTE_ADDR="not-an-ip")
    assert out.status_code == 500
    refreshed = client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert not AuditLog.objects.filter(operation_type="logout").exists()


def test_a_profile_change_whose_audit_row_fails_is_not_kept(member):
    """The change and its audit row are one transaction: when the row cannot be written, the change
    is rolled back. PostgreSQL's inet column refuses a peer address that is not an IP address (an
    audit row of a request from there fails); SQLite stores any text, so it has no such failure."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a database that type-checks the audit row's ip_address")
    client = client_for(member)
    response = client.patch("/api/auth/me", {"name": "New Name"}, format="json", REMOTE_ADDR="not-an-ip")
    assert response.status_code == 500
    member.refresh_from_db()
    assert member.name != "New Name"
    assert not AuditLog.objects.filter(operation_type="update").exists()
