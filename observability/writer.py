"""Group commit: the ledger writes of concurrent coroutines share database transactions.

Every run writes spans, events and budget holds as it goes, and a process runs many at once. Each
write on its own would cost a thread hop (the ORM is synchronous) and a transaction. Here the
writes waiting at a moment go to the database together: one hop, one transaction, and a write
that raises fails only its caller (the others are run again without it).
`ledger_write` returns once that transaction has committed, so a write is as durable when it
returns as it was on its own.

One waiting caller leads each batch and runs it on its own sync thread (under a request, the
request's thread, which lives as long as the caller waits); when it is done, the next waiting
caller leads the writes that queued meanwhile. No task outlives its callers. A caller holds its
database connection before it joins a batch (`studio.background.connection_hold`): a leader that
still had to take one from an exhausted pool, while the callers holding the pool's connections
wait on its batch, would stop the process.

The rules a write (the `fn` handed to `ledger_write`) must keep, because of that sharing:

1. It is safe to run again after a rollback. When another write of its batch raises, the
   transaction is rolled back and the rest of the batch runs again: a write is a function of the
   database and its arguments, with no effect outside the transaction (it publishes nothing,
   calls nothing remote, counts nothing in memory that a second run would count twice). Whatever
   must follow a write happens after `ledger_write` returns (events are published then).
2. It is never called inside `transaction.atomic()`. Its batch's transaction must be the
   outermost one, or `ledger_write` would return before anything is committed, and the caller's
   rollback would undo the writes of other runs, which were told they are stored. A write whose
   thread's connection is in an atomic block fails with AssertionError (so does its batch).
3. Writes of other runs may share its transaction. It raises rather than swallowing a database
   error (on PostgreSQL the transaction is unusable after one, for every write of the batch), it
   leaves the connection as it found it (no SET of session or transaction settings), and the
   locks it takes are held until the whole batch commits. A read cached with `batch_cached` is
   the same for every write of the batch, its runs again included. A write that needs a row
   locked before it reads (a run's admission under its organization's cap) names the row
   (`lock=(model, pk)`) instead of locking it itself: the rows a batch's writes name are locked
   first, in one statement, in key order, so batches of two processes that lock some of the same
   rows never wait for each other in a cycle (a write locking rows of its own as it went would
   deadlock against a batch that met the same rows in the other order).

`settings.LEDGER_GROUP_COMMIT = False` (STUDIO_LEDGER_GROUP_COMMIT=0) turns the sharing off: each
write is a batch of its own, in a transaction of its own, with the same order, results, failures
and cancellation; the rules then cost nothing, and the throughput of the shared transactions is
lost (benchmarks/README.md, gateway overhead)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, models, transaction

from observability.loops import loop_local
from observability.rows import rows_lock
from studio.background import connection_hold

R = TypeVar("R")
RowLock = tuple[type[models.Model], Any]  # a row a write needs locked before it runs: (model, pk)

_LEAD = object()  # what a waiting write is told when it must lead the next batch


class _Write:
    __slots__ = ("fn", "lock", "signal", "taken", "ok", "value")

    def __init__(self, fn: Callable[[], Any], lock: RowLock | None, loop: asyncio.AbstractEventLoop):
        self.fn = fn
        self.lock = lock
        self.signal: asyncio.Future = loop.create_future()
        self.taken = False  # part of a batch: it will be run whatever happens to its caller
        self.ok = False
        self.value: Any = None


class GroupCommit:
    """The batching of one event loop's writes.

    Cancelling a caller whose write is still queued drops the write, unless it was asked with
    `keep` (a record of what happened, such as a span's close). Once the write is part of a batch,
    or kept, it is made: the caller waits for it, gets the result, and the cancel is handed on to
    the caller's next await (so a reservation is never made behind its caller's back)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: list[_Write] = []
        self._leading = False

    async def write(self, fn: Callable[[], R], lock: RowLock | None = None, keep: bool = False) -> R:
        await connection_hold()  # a request's first query may be its write
        entry = _Write(fn, lock, self._loop)
        self._queue.append(entry)
        if not self._leading:
            self._leading = True
            entry.signal.set_result(_LEAD)
        while True:
            try:
                signal = await asyncio.shield(entry.signal)
            except asyncio.CancelledError:
                if not (entry.taken or keep):
                    self._withdraw(entry)
                    raise
                signal = await _see_through(entry.signal)
            if signal is _LEAD:
                entry.signal = self._loop.create_future()
                await self._lead()
                continue
            if entry.ok:
                return entry.value
            raise entry.value

    def _withdraw(self, entry: _Write) -> None:
        """A cancelled caller whose write was still queued: drop it (and pass on the lead it got)."""
        self._queue.remove(entry)
        if entry.signal.done() and entry.signal.result() is _LEAD:
            self._hand_over()

    async def _lead(self) -> None:
        taking = len(self._queue) if settings.LEDGER_GROUP_COMMIT else 1
        batch, self._queue = self._queue[:taking], self._queue[taking:]
        for entry in batch:
            entry.taken = True
        try:
            await unbroken(sync_to_async(_apply)(batch))
        finally:
            for entry in batch:
                if not entry.signal.done():
                    entry.signal.set_result(None)
            self._hand_over()

    def _hand_over(self) -> None:
        if self._queue:
            self._queue[0].signal.set_result(_LEAD)
        else:
            self._leading = False


async def unbroken(awaitable: Awaitable[R]) -> R:
    """Awaits `awaitable` to its end however often the caller is cancelled meanwhile; the cancels
    then reach the caller's next await. For work that must not stop halfway once begun."""
    future = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        return await _see_through(future)


async def _see_through(future: asyncio.Future) -> Any:
    """Waits for `future` however often the caller is cancelled meanwhile (the first cancel
    brought it here), then hands one cancel on to the caller's next await."""
    cancels = 1
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            if future.cancelled():  # the loop is closing and cancelled the write itself
                raise
            cancels += 1
    task = asyncio.current_task()
    for _ in range(cancels):
        task.uncancel()
    task.cancel()
    return result


_batch = threading.local()


def batch_cached(key: Hashable, compute: Callable[[], R]) -> R:
    """Within a batch, what `compute` returned for `key` to the first write that asked; the other
    writes of the same transaction reuse it (a read every concurrent call would repeat, such as
    resolving the same provider config). Outside a batch, `compute()`."""
    memo = getattr(_batch, "memo", None)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _apply(batch: list[_Write]) -> None:
    """Runs the batch in one transaction. A write that raises rolls the transaction back: it
    fails alone, and the others run again in a new one (writes are functions of the database
    and their arguments, so running one again after a rollback is running it once). Savepoints
    per write would spare that, but they cost two statements a write, every time."""
    _batch.memo = {}
    try:
        pending = batch
        while pending:
            failed = _attempt(pending)
            pending = [entry for entry in pending if entry is not failed] if failed else []
    finally:
        del _batch.memo


def _attempt(entries: list[_Write]) -> _Write | None:
    """One transaction of `entries`; the write that raised (its transaction rolled back), if any."""
    failed = None
    try:
        _assert_outside_atomic_blocks()
        with transaction.atomic():
            _rows_lock(entries)
            for entry in entries:
                try:
                    entry.value, entry.ok = entry.fn(), True
                except Exception as exc:
                    failed, entry.value, entry.ok = entry, exc, False
                    raise
    except Exception as exc:
        if failed is None:  # the commit itself failed: none of the batch was written
            for entry in entries:
                entry.value, entry.ok = exc, False
    return failed


def _rows_lock(entries: list[_Write]) -> None:
    """The rows the writes named (rule 3 of the module docstring), locked before any write runs."""
    named: dict[type[models.Model], set[Any]] = {}
    for entry in entries:
        if entry.lock is not None:
            named.setdefault(entry.lock[0], set()).add(entry.lock[1])
    for model in sorted(named, key=lambda model: model._meta.label):
        rows_lock(model, sorted(named[model]))


def _assert_outside_atomic_blocks() -> None:
    """Rule 2 of the module docstring. A test case's own wrapping blocks (Django's TestCase and
    pytest-django's `db`, which roll each test back) don't count: that is Django's rule for
    `atomic(durable=True)` too, which reads the same flag (django.db.transaction.Atomic). In such a
    test the batch is a savepoint of the test's transaction, as every other write of the test is."""
    blocks = connection.atomic_blocks
    if blocks and not blocks[-1]._from_testcase:
        raise AssertionError(
            "ledger_write was called inside transaction.atomic(): a ledger write runs in a transaction "
            "of its own, shared with other runs' writes, and must be the outermost one"
        )


_group_commit = loop_local(GroupCommit)


async def ledger_write(fn: Callable[[], R], *, lock: RowLock | None = None, keep: bool = False) -> R:
    """Runs `fn` (synchronous ORM writes) in a transaction shared with the writes other coroutines
    of this event loop make at the same moment; returns its result once that has committed. With
    `lock`, that row is locked in the transaction before `fn` runs (rule 3 of the module docstring).
    With `keep`, it is made even if the caller is cancelled while it waits (see GroupCommit)."""
    return await _group_commit().write(fn, lock, keep)
