"""The API conventions every resource shares: error envelope, pagination, audit listing."""

from __future__ import annotations

import pytest

from observability.models import AuditLog
from tests.accounts.factories import make_user
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    return body["error"]


def test_error_envelope_on_400_401_403_404_405(api_client, viewer_client, auth_client):
    assert_envelope(
        api_client.post("/api/auth/login", {"email": "x"}, format="json"), 400, "validation_error"
    )
    assert_envelope(api_client.get("/api/users"), 401, "not_authenticated")
    assert_envelope(viewer_client.post("/api/users", {}, format="json"), 403, "permission_denied")
    assert_envelope(auth_client.get("/api/users/user-" + "0" * 32), 404, "not_found")
    assert_envelope(auth_client.get("/api/no-such-endpoint"), 404, "not_found")
    assert_envelope(auth_client.put("/api/auth/me", {}, format="json"), 405, "method_not_allowed")


def test_malformed_json_is_a_400(api_client):
    response = api_client.generic("POST", "/api/auth/login", "{not json", content_type="application/json")
    assert_envelope(response, 400, "malformed_request")


@pytest.mark.urls("tests.studio.urls_failing")
def test_unhandled_errors_are_a_500_without_internals(auth_client):
    auth_client.raise_request_exception = False
    response = auth_client.get("/api/explode")
    error = assert_envelope(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in error["message"]


def test_429_envelope_carries_retry_after(api_client, member, settings):
    settings.LOGIN_FAILURE_LIMIT = 1
    api_client.post("/api/auth/login", {"email": member.email, "password": "wrong-password-1"}, format="json")
    response = api_client.post("/api/auth/login", {"email": member.email, "password": "x"}, format="json")
    assert_envelope(response, 429, "rate_limited")
    assert response["Retry-After"]


def test_pagination_envelope_and_bounds(owner):
    for _ in range(4):
        make_user(owner.organization)
    client = client_for(owner)
    page = client.get("/api/users?page=2&limit=2").json()
    assert page["count"] == 5 and page["page"] == 2 and page["limit"] == 2 and len(page["results"]) == 2
    assert client.get("/api/users?limit=1000000").json()["limit"] == 100
    past_the_end = client.get("/api/users?page=99").json()
    assert past_the_end["results"] == [] and past_the_end["count"] == 5
    for query in ("limit=0", "page=-1", "page=0", "limit=abc", "page=1.5", "limit=-5"):
        response = client.get(f"/api/users?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "validation_error"


def test_audit_is_admin_only_newest_first_filtered_and_org_scoped(owner, member, other_client):
    client = client_for(owner)
    client.patch(f"/api/users/{member.pk}", {"name": "One"}, format="json")
    client.patch(f"/api/users/{member.pk}", {"name": "Two"}, format="json")
    assert client_for(member).get("/api/audit").status_code == 403

    rows = client.get("/api/audit?operation_type=update&model_name=User").json()["results"]
    assert [row["changes"]["name"] for row in rows] == ["Two", "One"]
    assert all(row["user_id"] == owner.pk for row in rows)
    by_user = client.get(f"/api/audit?user_id={member.pk}").json()
    assert by_user["count"] == 0
    assert client.get("/api/audit?limit=1").json()["limit"] == 1
    assert other_client.get("/api/audit").json()["count"] == 0
    assert AuditLog.objects.filter(organization_id=owner.organization_id).count() >= 2
