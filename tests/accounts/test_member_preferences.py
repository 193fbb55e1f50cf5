"""A user's preferences are their own: the members list and member answers show them to nobody else."""

from __future__ import annotations

import pytest

from tests.accounts.factories import PASSWORD
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PRIVATE = {"theme": "dark", "saved_prompt": "draft the layoff memo for Friday"}


def test_another_members_preferences_are_not_in_the_members_list(owner, member):
    member_client = client_for(member)
    assert member_client.patch("/api/auth/me", {"preferences": PRIVATE}, format="json").status_code == 200

    for viewer in (owner, member):
        listed = client_for(viewer).get("/api/users")
        assert listed.status_code == 200
        rows = {row["id"]: row for row in listed.json()["results"]}
        expected = PRIVATE if viewer == member else None
        assert rows[member.pk]["preferences"] == expected
    assert "layoff" not in client_for(owner).get("/api/users").content.decode()


def test_member_answers_to_an_admin_leave_the_preferences_out(admin_client_, member):
    member.preferences = PRIVATE
    member.save(update_fields=["preferences"])

    changed = admin_client_.patch(f"/api/users/{member.pk}", {"role": "viewer"}, format="json")

    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert changed.json()["preferences"] is None


def test_the_user_still_sees_their_own_preferences_at_login_and_in_me(api_client, member):
    member.preferences = PRIVATE
    member.save(update_fields=["preferences"])

    session = api_client.post("/api/auth/login", {"email": member.email, "password": PASSWORD}, format="json")

    assert session.status_code == 200 and session.json()["user"]["preferences"] == PRIVATE
    assert client_for(member).get("/api/auth/me").json()["preferences"] == PRIVATE
