"""The rate limit of deployment calls (studio/api/ratelimit.py `window_hit`) on Redis: one round
trip a call, with the counting of the cache API it replaced (atomic across clients, the window's
counter expiring with it, refunds and reads through Django's cache agreeing)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from studio.api import ratelimit

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the single round trip is Redis's (REDIS_URL)")


@pytest.fixture
def commands(monkeypatch):
    """The names of the Redis commands sent, one per round trip (no pipeline is used)."""
    sent: list[str] = []
    real = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(str(args[0]).upper())
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    return sent


def counter_ttl(key: str, window_s: int) -> int:
    bucket, _ = ratelimit._window(key, window_s)
    redis_key = cache.make_and_validate_key(bucket)
    return cache._cache.get_client(redis_key).ttl(redis_key)


def test_a_hit_is_one_round_trip(commands):
    ratelimit.window_hit("deployment:one-trip", window_s=60)  # loads the script on a fresh server
    commands.clear()
    hit = ratelimit.window_hit("deployment:one-trip", window_s=60)
    assert commands == ["EVALSHA"]
    assert hit.count == 2 and 1 <= hit.retry_after <= 60


def test_the_counter_expires_with_its_window_and_agrees_with_the_cache_api():
    for expected in (1, 2, 3):
        assert ratelimit.window_hit("deployment:ttl", window_s=60).count == expected
    assert 0 < counter_ttl("deployment:ttl", 60) <= 61
    bucket, _ = ratelimit._window("deployment:ttl", 60)
    assert cache.get(bucket) == 3
    ratelimit.window_refund("deployment:ttl", window_s=60)
    assert ratelimit.window_hit("deployment:ttl", window_s=60).count == 3
    assert 0 < counter_ttl("deployment:ttl", 60) <= 61  # the expiry is not moved by later hits


def test_concurrent_hits_from_many_clients_each_get_their_own_count():
    def hit(_):
        return ratelimit.window_hit("deployment:concurrent", window_s=60).count

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = sorted(pool.map(hit, range(40)))
    assert counts == list(range(1, 41))


def test_the_next_window_starts_from_one(monkeypatch):
    assert ratelimit.window_hit("deployment:windows", window_s=60).count == 1
    assert ratelimit.window_hit("deployment:windows", window_s=60).count == 2
    later = ratelimit.clock() + 60
    monkeypatch.setattr(ratelimit, "clock", lambda: later)
    assert ratelimit.window_hit("deployment:windows", window_s=60).count == 1


def test_redis_unreachable_is_rate_limit_unavailable(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    with pytest.raises(ratelimit.RateLimitUnavailable):
        ratelimit.window_hit("deployment:down", window_s=60)
