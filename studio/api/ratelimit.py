"""Fixed-window counters in the cache, incremented atomically (shared across processes via Redis).

On Redis a hit is one round trip: a Lua script increments the window's counter and gives it its
expiry if it has none, atomically (what `add(bucket, 0, timeout)` then `incr` did in three
commands: SET NX, EXISTS, INCRBY). Other backends (the tests' local memory) take the cache API.
`window_hit_async` counts from the event loop without a thread (studio.loop_cache)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import AsyncScript, Script

from studio.loop_cache import cache_is_local, cache_is_redis, cache_script, cache_serialized

# KEYS[1] the window's counter, ARGV[1] its lifetime in seconds (set once, when it has none).
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_hit_script = Script(None, _HIT_SCRIPT.encode())  # its client is given per call (the cache's own pool)
# The same count, made only while KEYS[2] holds ARGV[2] (else false: nothing is counted).
_GUARDED_HIT_SCRIPT = "if redis.call('GET', KEYS[2]) ~= ARGV[2] then return false end\n" + _HIT_SCRIPT
_guarded_hit_script_async = AsyncScript(None, _GUARDED_HIT_SCRIPT.encode())


class RateLimitUnavailable(Exception):
    """The counters' store (the cache, Redis in production) cannot be reached; each caller
    decides whether to fail open or closed."""


@dataclass(frozen=True)
class WindowCount:
    count: int
    retry_after: int  # seconds until the window resets


# The clock windows are cut from (the tests pin it, so that no test straddles two windows).
clock = time.time


def _window(key: str, window_s: int) -> tuple[str, int]:
    now = int(clock())
    start = now - now % window_s
    return f"rl:{key}:{start}", start + window_s - now


def window_hit(key: str, *, window_s: int) -> WindowCount:
    """Counts one event in the current window and returns the new count (atomic `incr`)."""
    bucket, retry_after = _window(key, window_s)
    try:
        backend = caches["default"]
        count = (
            _redis_hit(backend, bucket, window_s + 1)
            if isinstance(backend, RedisCache)
            else _hit(bucket, window_s + 1)
        )
    except Exception as exc:
        raise RateLimitUnavailable(str(exc)) from exc
    return WindowCount(count=count, retry_after=max(1, retry_after))


async def window_hit_async(key: str, *, window_s: int, guard: tuple[str, object]) -> WindowCount | None:
    """`window_hit` from the event loop, without a thread: one round trip on Redis, the cache API
    on local memory (no I/O). The event is counted only while the cache holds `guard`'s value
    under its key, checked atomically with the count; None when it did not (nothing counted)."""
    bucket, retry_after = _window(key, window_s)
    guard_key, value = guard
    try:
        if cache_is_redis():
            count = await cache_script(
                _guarded_hit_script_async, [bucket, guard_key], [window_s + 1, cache_serialized(value)]
            )
        elif cache_is_local():
            count = _guarded_hit(bucket, window_s + 1, guard)
        else:
            count = await sync_to_async(_guarded_hit)(bucket, window_s + 1, guard)
    except Exception as exc:
        raise RateLimitUnavailable(str(exc)) from exc
    return None if count is None else WindowCount(count=int(count), retry_after=max(1, retry_after))


def _guarded_hit(bucket: str, timeout: int, guard: tuple[str, object]) -> int | None:
    """`_hit` unless the cache's value under `guard[0]` is not `guard[1]`."""
    return None if cache.get(guard[0]) != guard[1] else _hit(bucket, timeout)


def _redis_hit(backend: RedisCache, bucket: str, timeout: int) -> int:
    """One round trip (EVALSHA; the script is loaded once per Redis server, on its first miss)."""
    redis_key = backend.make_and_validate_key(bucket)
    client = backend._cache.get_client(redis_key, write=True)
    return int(_hit_script(keys=[redis_key], args=[timeout], client=client))


def _hit(bucket: str, timeout: int) -> int:
    cache.add(bucket, 0, timeout=timeout)
    try:
        return cache.incr(bucket)
    except ValueError:  # the bucket expired between add and incr
        cache.add(bucket, 1, timeout=timeout)
        return 1


def window_refund(key: str, *, window_s: int) -> None:
    """Takes back one event counted in the current window (an attempt that proved legitimate)."""
    bucket, _ = _window(key, window_s)
    try:
        cache.decr(bucket)
    except ValueError:  # the window has ended: nothing left to take back
        pass
    except Exception as exc:
        raise RateLimitUnavailable(str(exc)) from exc


def lock_set(key: str, *, seconds: int) -> None:
    """Locks `key` for `seconds` (read back with `lock_remaining`, on the same clock as windows)."""
    try:
        cache.set(f"rl:lock:{key}", clock() + seconds, timeout=seconds + 1)
    except Exception as exc:
        raise RateLimitUnavailable(str(exc)) from exc


def lock_remaining(key: str) -> int:
    """Whole seconds until the lock on `key` ends; 0 when it is not locked."""
    try:
        until = cache.get(f"rl:lock:{key}")
    except Exception as exc:
        raise RateLimitUnavailable(str(exc)) from exc
    return max(0, math.ceil(until - clock())) if until is not None else 0
