"""The group commit of ledger writes: concurrent writes share transactions, yet each write
succeeds, fails or is cancelled on its own."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError

from accounts.models import Organization
from observability import writer
from observability.writer import batch_cached, ledger_write
from tests.accounts.factories import make_organization

pytestmark = pytest.mark.django_db(transaction=True)


def create(name: str, *, pause_s: float = 0.0, fail: bool = False) -> str:
    organization = make_organization(name=name)
    time.sleep(pause_s)
    if fail:
        raise ValueError(f"{name} refused")
    return organization.name


async def stored_names() -> set[str]:
    return {name async for name in Organization.objects.values_list("name", flat=True)}


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


async def test_concurrent_writes_share_transactions_and_each_gets_its_result(batches):
    names = [f"org {n}" for n in range(50)]
    results = await asyncio.gather(*(ledger_write(functools.partial(create, name)) for name in names))
    assert results == names
    assert await stored_names() == set(names)
    # The first write goes alone; the 49 that queued while it ran share the next transaction.
    assert batches == [1, 49]


async def test_a_failing_write_fails_alone_and_leaves_nothing_behind(batches):
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
    assert batches == [1, 3]


async def test_a_write_cancelled_while_it_waits_is_not_written():
    leader = asyncio.create_task(ledger_write(functools.partial(create, "slow", pause_s=0.3)))
    await asyncio.sleep(0.05)  # the leader's batch is running
    waiting = asyncio.create_task(ledger_write(functools.partial(create, "withdrawn")))
    behind = asyncio.create_task(ledger_write(functools.partial(create, "after")))
    await asyncio.sleep(0)
    waiting.cancel()
    assert await leader == "slow"
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await behind == "after"  # the lead passed on past the withdrawn write
    assert await stored_names() == {"slow", "after"}
    assert await ledger_write(functools.partial(create, "later")) == "later"


async def write_and_pause(fn, seen: list) -> None:
    """A caller that records what its write returned, then awaits once more."""
    seen.append(await ledger_write(fn))
    await asyncio.sleep(0)
    seen.append("not cancelled")


async def test_a_write_cancelled_while_its_batch_runs_is_made_and_the_cancel_follows():
    leader = asyncio.create_task(ledger_write(functools.partial(create, "slow", pause_s=0.3)))
    await asyncio.sleep(0.05)
    seen = []
    follower = asyncio.create_task(write_and_pause(functools.partial(create, "next", pause_s=0.3), seen))
    await asyncio.sleep(0.35)  # the leader is done; the follower's batch is running
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    # The write that had started was made, its caller got the result, and the cancel came next.
    assert seen == ["next"]
    assert await leader == "slow"
    assert await stored_names() == {"slow", "next"}


async def test_a_leader_cancelled_before_its_batch_starts_still_makes_the_batch():
    """The sync thread is busy elsewhere when the leader is cancelled: the batch it took (its own
    write and the one behind it) is made all the same, and the cancel reaches it afterwards."""
    busy = asyncio.create_task(sync_to_async(time.sleep)(0.3))
    await asyncio.sleep(0.05)
    seen = []
    leader = asyncio.create_task(write_and_pause(functools.partial(create, "leader"), seen))
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    await busy
    assert seen == ["leader"]
    assert await stored_names() == {"leader"}
    assert await ledger_write(functools.partial(create, "later")) == "later"


async def test_a_read_cached_for_the_batch_is_made_once_per_transaction(batches):
    computed = []

    def read_then_create(name):
        batch_cached("shared read", lambda: computed.append(name) or name)
        return create(name)

    await asyncio.gather(*(ledger_write(functools.partial(read_then_create, f"org {n}")) for n in range(5)))
    assert batches == [1, 4]
    assert computed == ["org 0", "org 1"]  # once in each of the two transactions
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
