"""With the authentication cache on (accounts/auth_cache.py), the user and organization behind a
token are read from the cache, and every change that refuses or narrows access takes effect on the
very next request: role change, deactivation, removal, organization suspension."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.db import connection, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts import auth_cache
from accounts.admin import suspend
from accounts.authentication import _user_with_organization
from accounts.models import Organization, User
from tests.agents.agent_configs import agent_yaml
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)  # changes commit, as in production


@pytest.fixture(autouse=True)
def auth_cache_on(settings, monkeypatch):
    settings.AUTH_CACHE_SECONDS = 5
    # A change's tombstone keeps the user out of the cache for seconds, the fixtures' users' too;
    # here it lifts at once, so that a test's first request caches its user.
    monkeypatch.setattr(auth_cache, "TOMBSTONE_SECONDS", 0.001)


def queries_of(client, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        status = client.get(path).status_code
    return status, len(captured.captured_queries)


def cached_client(user):
    """A client whose user is cached: the first request reads and stores it."""
    client = client_for(user)
    assert client.get("/api/auth/me").status_code == 200
    return client


def test_the_user_comes_from_the_cache_after_the_first_request(member):
    client = cached_client(member)
    assert queries_of(client, "/api/auth/me") == (200, 0)  # no query at all: the user is cached


def test_a_role_change_takes_effect_on_the_next_request(member, admin_user):
    client = cached_client(member)
    assert (
        client.post("/api/agents", {"name": "a", "config_yaml": agent_yaml()}, format="json").status_code
        == 201
    )

    demoted = client_for(admin_user).patch(f"/api/users/{member.pk}", {"role": "viewer"}, format="json")

    assert demoted.status_code == 200
    refused = client.post("/api/agents", {"name": "b", "config_yaml": agent_yaml()}, format="json")
    assert refused.status_code == 403
    assert client.get("/api/auth/me").json()["role"] == "viewer"


def test_deactivation_takes_effect_on_the_next_request(member, admin_user):
    client = cached_client(member)

    changed = client_for(admin_user).patch(
        f"/api/users/{member.pk}", {"status": "deactivated"}, format="json"
    )

    assert changed.status_code == 200
    response = client.get("/api/auth/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_removal_takes_effect_on_the_next_request(member, admin_user):
    client = cached_client(member)

    assert client_for(admin_user).delete(f"/api/users/{member.pk}").status_code == 204

    assert client.get("/api/auth/me").status_code == 401


def test_suspension_by_the_admin_takes_effect_on_the_next_request_of_every_member(member, viewer, admin_user):
    clients = [cached_client(member), cached_client(viewer)]
    request = RequestFactory().post("/admin/accounts/organization/")
    request.user = admin_user
    request._messages = _Messages()

    suspend(site._registry[Organization], request, Organization.objects.filter(pk=member.organization_id))

    for client in clients:
        response = client.get("/api/agents")
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_an_own_profile_change_shows_on_the_next_request(member):
    client = cached_client(member)
    assert client.patch("/api/auth/me", {"name": "Renamed"}, format="json").status_code == 200
    assert client.get("/api/auth/me").json()["name"] == "Renamed"


def test_a_row_read_before_a_change_committed_is_not_cached(member, monkeypatch):
    """A request that read the user just before a deactivation committed must not store it."""
    monkeypatch.setattr(auth_cache, "TOMBSTONE_SECONDS", 60)

    def read_then_change_commits(user_id):
        stale = _user_with_organization(user_id)
        with transaction.atomic():
            user = User.objects.get(pk=user_id)
            user.status = User.Status.DEACTIVATED
            user.save(update_fields=["status"])
        return stale

    assert auth_cache.cached_user(member.pk, read_then_change_commits).is_active  # the stale read

    assert not auth_cache.cached_user(member.pk, _user_with_organization).is_active


def test_with_the_cache_unreachable_the_database_answers(member, settings):
    client = client_for(member)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert client.get("/api/auth/me").status_code == 200
    User.objects.filter(pk=member.pk).update(status=User.Status.DEACTIVATED)
    assert client.get("/api/auth/me").status_code == 401


def test_a_change_that_rolls_back_leaves_the_cache_as_it_was(member):
    client = cached_client(member)
    with pytest.raises(RuntimeError), transaction.atomic():
        user = User.objects.get(pk=member.pk)
        user.name = "Never kept"
        user.save(update_fields=["name"])
        raise RuntimeError
    assert queries_of(client, "/api/auth/me") == (200, 0)


class _Messages:
    """The admin action's success message has nowhere to go in this test."""

    def add(self, *args, **kwargs):
        pass
