"""Shared fixtures: users of every role, authenticated API clients, isolated cache."""

from __future__ import annotations

import os
import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import tokens_for
from tests.accounts.factories import make_organization, make_user

pytest_plugins = ["tests.fakes.fixtures"]

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Every cache key this pytest process writes starts with it (each test's own prefix, the live
# server's, and the one in force between tests), so the suite can remove what it wrote from a
# Redis it shares with other runs, and check at the end that nothing escaped.
CACHE_PREFIX = f"test-{uuid.uuid4().hex[:8]}"
LIVE_CACHE_PREFIX = f"{CACHE_PREFIX}-live"  # every live server's (tests/live.py)


def _redis():
    """A raw client of the suite's Redis (None on the local-memory cache, which dies with the
    process): the cache handler itself may point at a broken Redis while a test tears down."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def delete_cache_keys(client, prefix: str) -> list[bytes]:
    """Deletes the keys under `prefix` and returns them."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return keys


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database per pytest process, so that simultaneous local runs never share one."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    name = database.get("TEST", {}).get("NAME") or f"test_{database['NAME']}"
    stem, dot, suffix = str(name).rpartition(".") if str(name).endswith(".sqlite3") else (name, "", "")
    database.setdefault("TEST", {})["NAME"] = f"{stem}_{os.getpid()}{dot}{suffix}"


@pytest.fixture(scope="session", autouse=True)
def _close_async_test_connections(django_db_setup):
    """Async tests reach the database from asgiref's single sync thread; its connections must be
    closed before the test database can be dropped."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(scope="session", autouse=True)
def _redis_client():
    """Keys written between tests carry the suite's prefix too; at the end none may be left."""
    from django.conf import settings

    settings.CACHES["default"]["KEY_PREFIX"] = CACHE_PREFIX
    client = _redis()
    yield client
    if client is not None:
        delete_cache_keys(client, f"{LIVE_CACHE_PREFIX}:")  # the live servers' (all stopped by now)
        left = delete_cache_keys(client, CACHE_PREFIX)
        assert not left, f"the suite left {len(left)} keys in Redis, e.g. {left[:5]}"


@pytest.fixture(autouse=True)
def _test_settings(request, settings, _redis_client):
    """A fresh cache namespace per test (counters never leak between tests or xdist workers),
    removed from Redis when the test ends, a fast password hasher except where argon2
    itself is under test, and no authentication cache."""
    default = settings.CACHES["default"]
    prefix = f"{CACHE_PREFIX}-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {"default": {**default, "KEY_PREFIX": prefix}}
    if "argon2" not in request.keywords:
        settings.PASSWORD_HASHERS = FAST_HASHERS
    # Query counts pin the caller's query: the authentication cache is on only in its own tests
    # (tests/accounts/test_auth_cache.py).
    settings.AUTH_CACHE_SECONDS = 0
    yield
    if _redis_client is not None:
        delete_cache_keys(_redis_client, f"{prefix}:")


@pytest.fixture(autouse=True)
def _rate_limit_clock(monkeypatch):
    """Rate limits count in fixed windows; pinned to the first second of one, a test's requests
    all fall in the same window however long it runs (a minute's boundary made them flaky)."""
    from studio.api import ratelimit

    window_start = 1_800_000_000  # a multiple of every window length in use (60 s, 15 min, 1 h)
    monkeypatch.setattr(ratelimit, "clock", lambda: window_start + 1.0)


@pytest.fixture(params=[True, False], ids=["group-commit", "write-alone"])
def ledger_group_commit(request, settings):
    """Runs a test of the ledger's write path both ways: concurrent writes sharing transactions
    (the default) and each write in a transaction of its own (STUDIO_LEDGER_GROUP_COMMIT=0)."""
    settings.LEDGER_GROUP_COMMIT = request.param
    return request.param


@pytest.fixture
def organization(db):
    return make_organization()


@pytest.fixture
def owner(organization):
    return make_user(organization, role="owner")


@pytest.fixture
def admin_user(organization):
    return make_user(organization, role="admin")


@pytest.fixture
def member(organization):
    return make_user(organization, role="member")


@pytest.fixture
def viewer(organization):
    return make_user(organization, role="viewer")


@pytest.fixture
def user(member):
    return member


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
    client.user = user
    return client


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def auth_client(user):
    return client_for(user)


@pytest.fixture
def owner_client(owner):
    return client_for(owner)


@pytest.fixture
def admin_client_(admin_user):
    return client_for(admin_user)


@pytest.fixture
def viewer_client(viewer):
    return client_for(viewer)


@pytest.fixture
def other_org_owner(db):
    return make_user(make_organization(name="Other Org"), role="owner")


@pytest.fixture
def other_client(other_org_owner):
    return client_for(other_org_owner)


@pytest.fixture
def operator(db):
    """A staff superuser of no organization, as `createsuperuser` makes one."""
    return User.objects.create_superuser("root@example.com", "root-password-123")


@pytest.fixture
def operator_browser(operator):
    """A browser signed in to /admin/ as the operator."""
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, _redis_client):
    """A real daphne process serving the app on the test database (use with `transactional_db`)."""
    from tests.live import DaphneServer

    env = {
        "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
        # Tests make stale runs on purpose and reap them themselves (test_reaping_live starts
        # servers of its own that reap).
        "STUDIO_REAP_EVERY_S": "0",
    }
    with django_db_blocker.unblock():
        server = DaphneServer(extra_env=env)
    yield server
    server.stop()
