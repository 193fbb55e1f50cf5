"""The default cache from the event loop, without a thread: Django's async cache API (`cache.aget`)
runs the sync client on a worker thread, a hop each time, which the hot path of a call cannot
afford.

On Redis the reads and writes go over `redis.asyncio`, one client per event loop and server, made
from the cache's own settings (its first server and OPTIONS), with the cache's key function (prefix,
version) and serializer: what these functions write the sync cache reads, and the other way round.
The local-memory cache does no I/O, so it is called directly from the loop. Any other backend
keeps Django's async API. Errors are the cache's own (a Redis down raises `redis.ConnectionError`),
for callers to handle as they handle the sync cache's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import AsyncScript

# The running loops' clients, by server and options. A closed loop's are dropped when a new loop
# makes its first (a strong map: its clients' connections refer to their loop, so a weak one by
# loop would never let go).
_clients: dict[asyncio.AbstractEventLoop, dict[tuple[str, str], redis.asyncio.Redis]] = {}
_clients_lock = threading.Lock()
_SYNC_ONLY_OPTIONS = ("pool_class", "parser_class", "serializer")  # the sync client's classes


def loop_redis(backend: RedisCache) -> redis.asyncio.Redis:
    """The running loop's client of `backend`'s first server (the one the sync cache writes to)."""
    loop = asyncio.get_running_loop()
    clients = _clients.get(loop)
    server = backend._servers[0]
    options = {name: value for name, value in backend._options.items() if name not in _SYNC_ONLY_OPTIONS}
    key = (server, repr(sorted(options.items())))
    if clients is None or key not in clients:
        with _clients_lock:
            for closed in [other for other in list(_clients) if other.is_closed()]:
                del _clients[closed]
            clients = _clients.setdefault(loop, {})
            pool = redis.asyncio.ConnectionPool.from_url(server, **options)
            clients[key] = redis.asyncio.Redis(connection_pool=pool)
    return clients[key]


async def cache_get(key: str, default: Any = None) -> Any:
    """`cache.get(key, default)` from the loop."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        stored = await loop_redis(backend).get(backend.make_and_validate_key(key))
        return default if stored is None else backend._cache._serializer.loads(stored)
    if isinstance(backend, LocMemCache):
        return backend.get(key, default)
    return await backend.aget(key, default)


async def cache_set(key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """`cache.set(key, value, timeout)` from the loop."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        name = backend.make_and_validate_key(key)
        timeout = backend.get_backend_timeout(timeout)
        client = loop_redis(backend)
        if timeout == 0:
            await client.delete(name)
        else:
            await client.set(name, backend._cache._serializer.dumps(value), ex=timeout)
        return
    if isinstance(backend, LocMemCache):
        backend.set(key, value, timeout)
        return
    await backend.aset(key, value, timeout)


def cache_serialized(value: Any) -> Any:
    """`value` as the Redis cache stores it (what a script comparing stored values is given)."""
    backend = caches["default"]
    return backend._cache._serializer.dumps(value) if isinstance(backend, RedisCache) else value


async def cache_script(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Runs a Lua script on the Redis cache's server (EVALSHA; loaded on the server's first miss);
    `keys` are cache keys, made into the cache's own. Only on Redis (see `cache_is_redis`)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        raise TypeError("Lua scripts run on the Redis cache only")
    names = [backend.make_and_validate_key(key) for key in keys]
    return await script(keys=names, args=list(args), client=loop_redis(backend))


def cache_is_redis() -> bool:
    return isinstance(caches["default"], RedisCache)


def cache_is_local() -> bool:
    """The default cache is this process's memory: its sync API does no I/O and may be called from
    the loop as it is."""
    return isinstance(caches["default"], LocMemCache)
