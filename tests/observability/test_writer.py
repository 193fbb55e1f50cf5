"""The group commit of ledger writes: concurrent writes share transactions, yet each write
succeeds, fails or is cancelled on its own. Every test runs both ways: with the group commit and
with each write in a transaction of its own (settings.LEDGER_GROUP_COMMIT); only the batches
differ. Writes that must be running at a given moment are held on a `Gate`, never timed."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import DatabaseError, IntegrityError, connection, connections, transaction

from accounts.models import Organization
from observability import writer
from observability.writer import batch_cached, ledger_write
from tests.accounts.factories import make_organization

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_group_commit")]


def create(name: str, *, fail: bool = False) -> str:
    organization = make_organization(name=name)
    if fail:
        raise ValueError(f"{name} refused")
    return organization.name


async def stored_names() -> set[str]:
    return {name async for name in Organization.objects.values_list("name", flat=True)}


class Gate:
    """Holds a write in the sync thread until the test opens it; `entered` is set, on the test's
    loop, once the write is running (and so holding its batch and the thread)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self._opened = threading.Event()

    def hold(self, fn):
        def held():
            self._loop.call_soon_threadsafe(self.entered.set)
            self._opened.wait()
            return fn()

        return held

    def open(self) -> None:
        self._opened.set()


@pytest.fixture
async def gates():
    """Makes gates; opens them all at the end, so that a test failing midway blocks no thread."""
    made: list[Gate] = []

    def gate() -> Gate:
        made.append(Gate())
        return made[-1]

    yield gate
    for each in made:
        each.open()


@pytest.fixture
def batches(monkeypatch):
    """The size of every batch the group commit runs."""
    sizes: list[int] = []
    apply = writer._apply

    def counting(batch):
        sizes.append(len(batch))
        apply(batch)

    monkeypatch.setattr(writer, "_apply", counting)
    return sizes


async def test_concurrent_writes_share_transactions_and_each_gets_its_result(batches, ledger_group_commit):
    names = [f"org {n}" for n in range(50)]
    results = await asyncio.gather(*(ledger_write(functools.partial(create, name)) for name in names))
    assert results == names
    assert await stored_names() == set(names)
    # The first write goes alone; the 49 that queued while it ran share the next transaction.
    assert batches == ([1, 49] if ledger_group_commit else [1] * 50)


async def test_a_failing_write_fails_alone_and_leaves_nothing_behind(batches, ledger_group_commit):
    results = await asyncio.gather(
        ledger_write(functools.partial(create, "first")),
        ledger_write(functools.partial(create, "kept")),
        ledger_write(functools.partial(create, "refused", fail=True)),
        ledger_write(functools.partial(create, "also kept")),
        return_exceptions=True,
    )
    assert results[:2] == ["first", "kept"] and results[3] == "also kept"
    assert isinstance(results[2], ValueError) and str(results[2]) == "refused refused"
    assert await stored_names() == {"first", "kept", "also kept"}
    assert batches == ([1, 3] if ledger_group_commit else [1, 1, 1, 1])


async def test_a_write_cancelled_while_it_waits_is_not_written(gates):
    gate = gates()
    leader = asyncio.create_task(ledger_write(gate.hold(functools.partial(create, "held"))))
    await gate.entered.wait()  # the leader's batch is running
    waiting = asyncio.create_task(ledger_write(functools.partial(create, "withdrawn")))
    behind = asyncio.create_task(ledger_write(functools.partial(create, "after")))
    await asyncio.sleep(0)  # one turn of the loop: both queue behind the running batch
    waiting.cancel()
    gate.open()
    assert await leader == "held"
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await behind == "after"  # the lead passed on past the withdrawn write
    assert await stored_names() == {"held", "after"}
    assert await ledger_write(functools.partial(create, "later")) == "later"


async def write_and_pause(fn, seen: list) -> None:
    """A caller that records what its write returned, then awaits once more."""
    seen.append(await ledger_write(fn))
    await asyncio.sleep(0)
    seen.append("not cancelled")


async def test_a_write_cancelled_while_its_batch_runs_is_made_and_the_cancel_follows(gates):
    first, second = gates(), gates()
    leader = asyncio.create_task(ledger_write(first.hold(functools.partial(create, "first"))))
    await first.entered.wait()
    seen = []
    follower = asyncio.create_task(write_and_pause(second.hold(functools.partial(create, "next")), seen))
    first.open()
    await second.entered.wait()  # the leader is done; the follower's batch is running
    follower.cancel()
    second.open()
    with pytest.raises(asyncio.CancelledError):
        await follower
    # The write that had started was made, its caller got the result, and the cancel came next.
    assert seen == ["next"]
    assert await leader == "first"
    assert await stored_names() == {"first", "next"}


async def test_a_leader_cancelled_before_its_batch_starts_still_makes_the_batch(gates):
    """The sync thread is busy elsewhere when the leader is cancelled: the batch it took is made
    all the same, and the cancel reaches it afterwards."""
    # A caller without a connection takes one (on the sync thread) before it joins a batch.
    await sync_to_async(connection.ensure_connection)()
    elsewhere = gates()
    busy = asyncio.create_task(sync_to_async(elsewhere.hold(lambda: None))())
    await elsewhere.entered.wait()  # the sync thread is taken
    seen = []
    leader = asyncio.create_task(write_and_pause(functools.partial(create, "leader"), seen))
    await asyncio.sleep(0)  # one turn of the loop: the leader takes its batch, which waits for the thread
    leader.cancel()
    elsewhere.open()
    with pytest.raises(asyncio.CancelledError):
        await leader
    await busy
    assert seen == ["leader"]
    assert await stored_names() == {"leader"}
    assert await ledger_write(functools.partial(create, "later")) == "later"


async def test_a_read_cached_for_the_batch_is_made_once_per_transaction(batches, ledger_group_commit):
    computed = []

    def read_then_create(name):
        batch_cached("shared read", lambda: computed.append(name) or name)
        return create(name)

    names = [f"org {n}" for n in range(5)]
    await asyncio.gather(*(ledger_write(functools.partial(read_then_create, name)) for name in names))
    if ledger_group_commit:
        assert batches == [1, 4]
        assert computed == ["org 0", "org 1"]  # once in each of the two transactions
    else:
        assert batches == [1] * 5 and computed == names
    assert batch_cached("outside", lambda: "fresh") == "fresh"


async def test_a_failing_write_on_its_own_leaves_nothing_behind(batches):
    with pytest.raises(ValueError, match="alone refused"):
        await ledger_write(functools.partial(create, "alone", fail=True))
    assert batches == [1] and await stored_names() == set()


async def test_a_database_error_in_a_shared_transaction_fails_only_its_write():
    def with_slug(slug):
        return Organization.objects.create(name=slug, slug=slug).name

    results = await asyncio.gather(
        ledger_write(functools.partial(with_slug, "taken")),
        ledger_write(functools.partial(with_slug, "taken")),  # unique slug: IntegrityError
        ledger_write(functools.partial(with_slug, "free")),
        return_exceptions=True,
    )
    assert results[0] == "taken" and results[2] == "free"
    assert isinstance(results[1], IntegrityError)
    assert await stored_names() == {"taken", "free"}


async def test_a_write_inside_an_atomic_block_fails_loudly_and_runs_nothing():
    """Its transaction would be a savepoint of the caller's: it would return uncommitted, and the
    caller's rollback would undo the writes of other runs batched with it."""
    ran = []

    def write():
        ran.append("write")
        return create("nested")

    def inside_atomic():
        with transaction.atomic():
            make_organization(name="the caller's own")
            with pytest.raises(AssertionError, match=r"inside transaction\.atomic\(\)"):
                async_to_sync(ledger_write)(write)

    await sync_to_async(inside_atomic)()
    assert ran == []
    assert await stored_names() == {"the caller's own"}


@pytest.mark.django_db  # not transactional: the test runs inside the test case's atomic blocks
def test_the_test_cases_own_transaction_does_not_count_as_an_atomic_block():
    """In such a test the write runs on the test's thread (async_to_sync brings it back there),
    inside the transaction the test case rolls back at its end, like every other write of it."""
    assert async_to_sync(ledger_write)(functools.partial(create, "in the test's transaction")) == (
        "in the test's transaction"
    )
    assert Organization.objects.filter(name="in the test's transaction").exists()


def locked_elsewhere(organization_ids) -> set[str]:
    """Which of the rows another connection cannot lock now."""
    other = connections.create_connection("default")
    locked = set()
    try:
        for pk in organization_ids:
            try:
                with other.cursor() as cursor:
                    cursor.execute(
                        "SELECT 1 FROM accounts_organization WHERE id = %s FOR UPDATE NOWAIT", [pk]
                    )
            except DatabaseError:
                locked.add(pk)
    finally:
        other.close()
    return locked


def key_shareable_elsewhere(organization_id) -> bool:
    """Whether another connection can take the lock a foreign key check takes on the row now."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM accounts_organization WHERE id = %s FOR KEY SHARE NOWAIT", [organization_id]
            )
        return True
    except DatabaseError:
        return False
    finally:
        other.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's transactions hold its one write lock")
async def test_a_row_a_batch_locks_still_takes_other_transactions_foreign_keys(ledger_group_commit):
    """A run's admission locks its organization's row for its whole batch, while other processes'
    batches insert rows that reference it (their foreign key checks take KEY SHARE on it). Under
    FOR UPDATE they waited for this batch, which could itself wait for a budget counter they had
    updated: two server processes deadlocked under load (benchmarks/README.md, Deployment calls)."""
    organization = await sync_to_async(make_organization)(name="admitting")
    seen = {}

    def probe():
        seen["key share"] = key_shareable_elsewhere(organization.pk)
        seen["locked"] = locked_elsewhere([organization.pk])

    await ledger_write(probe, lock=(Organization, organization.pk))
    assert seen == {"key share": True, "locked": {organization.pk}}  # admissions still wait


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's transactions hold its one write lock")
async def test_the_rows_a_batchs_writes_name_are_locked_before_its_first_write(gates, ledger_group_commit):
    """So batches meeting the same rows lock them in one order, never in a cycle."""
    # A caller without a connection takes one (on the sync thread) before it joins a batch, and
    # the writes below would then join as the busy thread lets them, not as one batch.
    await sync_to_async(connection.ensure_connection)()
    first, second = [await sync_to_async(make_organization)(name=name) for name in ("first", "second")]
    seen = {}

    def probe():
        seen["locked"] = locked_elsewhere([first.pk, second.pk])

    gate = gates()
    leading = asyncio.ensure_future(ledger_write(gate.hold(lambda: None)))
    await gate.entered.wait()  # the writes below queue behind it and make the next batch together
    named = [
        ledger_write(probe, lock=(Organization, second.pk)),
        ledger_write(lambda: None, lock=(Organization, first.pk)),
    ]
    queued = asyncio.gather(*named)
    await asyncio.sleep(0)
    gate.open()
    await leading
    await queued
    # With the group commit, the row the later write names is locked before the earlier one runs.
    assert seen["locked"] == ({first.pk, second.pk} if ledger_group_commit else {second.pk})
    assert await sync_to_async(locked_elsewhere)([first.pk, second.pk]) == set()  # until the commit


async def test_a_contexts_writes_take_its_connection_once(monkeypatch):
    """The event loop's thread never has a connection of its own (Django's are per thread), so
    the writer remembers that the caller's sync thread took one: one hop for it, not one a write."""
    from studio import background

    takes = []
    take = background.connection_take
    monkeypatch.setattr(background, "connection_take", lambda: (takes.append(1), take())[1])

    async def three_writes():
        for name in ("one", "two", "three"):
            await ledger_write(functools.partial(create, name))

    await asyncio.create_task(three_writes(), context=contextvars.Context())  # as a request's
    assert len(takes) == 1
    assert await stored_names() == {"one", "two", "three"}
