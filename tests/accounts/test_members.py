"""Members of an organization: the role matrix, the last-owner rule, isolation, query counts."""

from __future__ import annotations

import pytest

from accounts.models import User
from observability.models import AuditLog
from tests.accounts.factories import PASSWORD, make_user
from tests.api_cases import APIResourceCases, Call

pytestmark = pytest.mark.django_db

NEW_MEMBER = {"email": "new.person@example.com", "password": PASSWORD, "name": "New Person", "role": "member"}


class TestUserAPI(APIResourceCases):
    list_path = "/api/users"
    detail_path = "/api/users/{pk}"
    writes = (
        Call("POST", "/api/users", NEW_MEMBER),
        Call("PATCH", "/api/users/{pk}", {"role": "viewer"}),
        Call("DELETE", "/api/users/{pk}"),
    )
    write_role = "admin"
    list_queries = 2  # authentication (user + organization in one query), the page with its count
    detail_queries = 2  # authentication, the user

    def make(self, organization):
        return make_user(organization)


def test_admin_adds_a_member_and_it_is_audited(admin_client_, admin_user):
    response = admin_client_.post("/api/users", NEW_MEMBER, format="json")
    assert response.status_code == 201, response.content
    created = User.objects.get(email="new.person@example.com")
    assert created.organization_id == admin_user.organization_id
    row = AuditLog.objects.get(operation_type="create", record_id=created.pk)
    assert row.user_id == admin_user.pk
    assert "password" not in row.changes


def test_admin_cannot_create_or_touch_owners(admin_client_, owner):
    assert admin_client_.post("/api/users", {**NEW_MEMBER, "role": "owner"}, format="json").status_code == 403
    assert admin_client_.patch(f"/api/users/{owner.pk}", {"role": "member"}, format="json").status_code == 403
    assert admin_client_.delete(f"/api/users/{owner.pk}").status_code == 403


def test_the_last_owner_cannot_be_demoted_deactivated_or_removed(owner_client, owner):
    for body in ({"role": "admin"}, {"status": "deactivated"}):
        response = owner_client.patch(f"/api/users/{owner.pk}", body, format="json")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "last_owner"
    assert owner_client.delete(f"/api/users/{owner.pk}").status_code == 409
    owner.refresh_from_db()
    assert owner.role == "owner" and owner.status == "active"


def test_with_a_second_owner_one_owner_may_step_down(owner_client, owner, organization):
    make_user(organization, role="owner")
    response = owner_client.patch(f"/api/users/{owner.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin"


def test_admin_updates_and_removes_a_member(admin_client_, member):
    response = admin_client_.patch(
        f"/api/users/{member.pk}", {"role": "viewer", "name": "Renamed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    update = AuditLog.objects.get(operation_type="update", record_id=member.pk)
    assert update.changes == {"role": "viewer", "name": "Renamed"}
    assert admin_client_.delete(f"/api/users/{member.pk}").status_code == 204
    assert not User.objects.filter(pk=member.pk).exists()
    assert AuditLog.objects.filter(operation_type="delete", record_id=member.pk).exists()


def test_invalid_member_input_is_a_400_that_changes_nothing(admin_client_, member):
    bad_role = admin_client_.patch(f"/api/users/{member.pk}", {"role": "emperor"}, format="json")
    assert bad_role.status_code == 400
    assert "role" in bad_role.json()["error"]["fields"]
    bad_email = admin_client_.post("/api/users", {**NEW_MEMBER, "email": "nope"}, format="json")
    assert bad_email.status_code == 400
    member.refresh_from_db()
    assert member.role == "member"
