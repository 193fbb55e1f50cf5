"""Work a server process starts in the background: it outlives the request or frame that started it.

A task made with `asyncio.create_task` inherits its starter's context, and with it the starter's
database connection (Django keeps connections per context) and thread-sensitive executor, both of
which end with the request. The task then reached the database through a connection made in a
thread it could no longer use, could not close it, and on PostgreSQL the pooled connection was
lost for good: after `STUDIO_DB_POOL_SIZE` such tasks the server stopped answering.

`spawn` is the one way to start such work. Each task gets a context of its own: its database work
runs on one thread of its own, on connections it opens itself and closes when it ends, and its
exception, if it raises, is logged with its traceback instead of being left unretrieved."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import OperationalError, connections
from psycopg_pool import PoolTimeout

logger = logging.getLogger(__name__)

T = TypeVar("T")

_running: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones


def spawn(work: Callable[..., Awaitable[T]], *args: Any, name: str) -> asyncio.Task[T]:
    """Runs `work(*args)` in the background on the running loop, in a fresh context."""
    return _started(_with_own_connections(work, args), name)


def every(seconds: float, work: Callable[[], Awaitable[Any]], *, name: str) -> asyncio.Task:
    """Runs `work()` every `seconds` in the background (a process's periodic work: reaping,
    expiring approvals, rolling up usage). Each round is a `spawn` of its own, so no database
    connection is held between rounds; a round that fails is logged and the next one comes."""
    return _started(_repeat(seconds, work, name), name)


async def _repeat(seconds: float, work: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        with contextlib.suppress(Exception):  # logged by `_finished`; the database may be down a while
            await spawn(work, name=name)


def _started(coroutine: Awaitable[T], name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coroutine, name=name, context=contextvars.Context())
    _running.add(task)
    task.add_done_callback(_finished)
    return task


async def _with_own_connections(work: Callable[..., Awaitable[T]], args: tuple) -> T:
    async with ThreadSensitiveContext():
        _holding.set(False)  # a sync thread of its own, without the caller's connection
        await connection_hold()
        try:
            return await work(*args)
        finally:
            # Same context, same thread as the task's queries: the connections it opened.
            await sync_to_async(connections.close_all)()


# Whether the current context's sync thread holds its connection (`connection_hold`).
_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("connection_holding", default=False)


async def connection_hold() -> None:
    """`connection_take` on the context's sync thread, once per context; later calls cost nothing.
    Django's connections are per thread, so the event loop's own `connections["default"]` never
    has one: asking it would hop to the sync thread before every write. Remembered per context,
    which is a request's or a background task's (each ends with its connections closed); a
    connection closed meanwhile is opened again by the next query, without the waiting here."""
    if not _holding.get():
        await sync_to_async(connection_take)()
        _holding.set(True)


def connection_take() -> None:
    """Takes the context's database connection, waiting while the pool is exhausted. Background
    work takes it before it starts, for two reasons. Django keeps connections in the context
    copy-on-write, so tasks the work starts later (heartbeats, ledger writes) share this one
    instead of each opening one that nothing closes. And a caller holds its connection before it
    joins a group commit (the ledger writer makes sure of it): a batch's leader that still had to
    take one from an exhausted pool, while the tasks holding the pool's connections wait on that
    batch, would deadlock the process."""
    while True:
        try:
            connections["default"].ensure_connection()
            return
        except OperationalError as error:
            if not isinstance(error.__cause__, PoolTimeout):
                raise
            # Queue for a connection rather than fail: requests hold theirs only briefly, and
            # the caller holds nothing while it waits.
            logger.warning("Waiting for a database connection (pool exhausted)")


def _finished(task: asyncio.Task) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("Background task %s failed", task.get_name(), exc_info=error)
