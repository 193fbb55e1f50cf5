"""Per-process memos that every process drops at once when their rows change: a hot path (admitting
a deployment call, resolving a provider config) reads no row while nothing changed.

Entries live in this process's memory only (a decrypted key may be one); the shared cache (Redis,
with several processes) holds one random stamp per scope (a deployment, an organization). An entry
is used only while its scope's stamp is the one it was loaded under. `changed(scopes)` replaces
the stamps at once and again when the current transaction has committed, so the next use in any
process loads the rows again. The stamp is read before the rows are, so a write committing while
an entry is loaded leaves that entry with a stale stamp.

The cache unreachable: no entry is used (every use loads its rows). An entry also expires after
`ttl_s`, which bounds what a replacement lost with the cache (down while a write committed) could
keep serving."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    scope: str
    value: Any
    stamp: str
    loaded_at: float


class StampedMemo:
    """What `load()` gave for a key of a scope, kept while the scope's shared stamp is unchanged."""

    def __init__(self, name: str, *, ttl_s: float = 30.0, max_entries: int = 4096):
        self.name, self.ttl_s, self.max_entries = name, ttl_s, max_entries
        self._entries: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()  # request threads and the ledger's writer threads use it

    def stamp_key(self, scope: str) -> str:
        return f"{self.name}-stamp:{scope}"

    def get(self, scope: str, key: Hashable, load: Callable[[], T], *, keep: Callable[[T], bool] = bool) -> T:
        """`load()`'s value for `key`, from this process's entry while `scope`'s stamp is unchanged.
        A value `keep` refuses (by default a falsy one: nothing found) or an exception is not kept."""
        stamp = self._stamp(scope)
        entry = self._entries.get(key)
        if (
            entry is not None
            and stamp is not None
            and entry.stamp == stamp
            and entry.scope == scope
            and time.monotonic() - entry.loaded_at < self.ttl_s
        ):
            return entry.value
        value = load()
        if stamp is not None and keep(value):
            self._remember(key, _Entry(scope, value, stamp, time.monotonic()))
        return value

    def peek(self, scope: str, key: Hashable) -> tuple[Any, str] | None:
        """The value kept for `key` of `scope` and the stamp it was loaded under, without reading
        the shared stamp: the caller compares them itself (in a round trip it makes anyway) and
        uses the value only if they match. None when nothing is kept or the entry has expired."""
        entry = self._entries.get(key)
        if entry is None or entry.scope != scope or time.monotonic() - entry.loaded_at >= self.ttl_s:
            return None
        return entry.value, entry.stamp

    def changed(self, scopes: Iterable[str]) -> None:
        """Every process loads these scopes' entries anew on their next use: their stamps are
        replaced now and once the current transaction (if any) has committed."""
        scopes = sorted({str(scope) for scope in scopes if scope})
        if not scopes:
            return
        self._stamps_replace(scopes)
        transaction.on_commit(lambda: self._stamps_replace(scopes))

    def _remember(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:  # the oldest go first
                self._entries.pop(next(iter(self._entries)), None)

    def _stamp(self, scope: str) -> str | None:
        """The scope's stamp (a new one if the cache has none); None when the cache is down."""
        try:
            stamp = cache.get(self.stamp_key(scope))
            if stamp is None:
                cache.add(self.stamp_key(scope), uuid.uuid4().hex, timeout=None)
                stamp = cache.get(self.stamp_key(scope))
        except Exception:
            logger.warning("Cache unavailable: %s of %s loaded from the database", self.name, scope)
            return None
        return stamp

    def _stamps_replace(self, scopes: list[str]) -> None:
        with self._lock:
            for key in [key for key, entry in self._entries.items() if entry.scope in scopes]:
                del self._entries[key]
        try:
            cache.set_many({self.stamp_key(scope): uuid.uuid4().hex for scope in scopes}, timeout=None)
        except Exception:
            logger.warning(
                "Cache unavailable: other processes may use %s of %s for up to %s s as before",
                self.name,
                ", ".join(scopes),
                self.ttl_s,
            )
