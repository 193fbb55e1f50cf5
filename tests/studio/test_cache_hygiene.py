"""The suite leaves nothing in the Redis it shares with other runs: every key it writes, its live
servers' included, carries the prefix it removes (the session-end check in tests/conftest.py
fails the run when any is left)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import CACHE_PREFIX, LIVE_CACHE_PREFIX


@pytest.fixture
def redis_client(_redis_client):
    if _redis_client is None:
        pytest.skip("the local-memory cache dies with its process")
    return _redis_client


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_live_servers_cache_keys_carry_the_suites_prefix(daphne_server, redis_client):
    email = f"hygiene-{uuid.uuid4().hex}@example.com"
    refused = httpx.post(
        f"{daphne_server.url}/api/auth/login", json={"email": email, "password": "wrong-1234567"}
    )
    assert refused.status_code == 401
    written = [key.decode() for key in redis_client.scan_iter(match=f"*{email}*", count=1000)]
    assert written, "the failed login counted nothing"  # the server does write to Redis
    assert all(key.startswith(f"{LIVE_CACHE_PREFIX}:") for key in written), written


def test_a_tests_cache_keys_carry_its_own_prefix_under_the_suites(redis_client):
    from django.core.cache import cache

    probe = f"hygiene:{uuid.uuid4().hex}"
    cache.set(probe, 1, timeout=60)
    (key,) = [key.decode() for key in redis_client.scan_iter(match=f"*{probe}", count=1000)]
    assert key.startswith(f"{CACHE_PREFIX}-") and not key.startswith(LIVE_CACHE_PREFIX)
