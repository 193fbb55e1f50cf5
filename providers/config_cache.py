"""The provider configs resolved in this server process, kept between calls, so that an LLM call
reads no row and decrypts no key while its organization's configs are unchanged: (organization,
user, kind, named config) -> the config and its adapter settings, the decrypted key included.

The decrypted key lives only in this process's memory (the entries): the shared cache holds a
random stamp per organization, nothing else. An entry is used only while its organization's stamp
in the shared cache (Redis, with several processes) is the one it was loaded under. Every write of
a provider config or of its organization (create, update, deactivate, delete, key rotation; model
signals, so the admin's writes too, and `configs_changed` for bulk writes) replaces the stamp, at
once and again when its transaction has committed, so the next call in any process loads the rows
again. The stamp is read before the rows are, so a write committing while an entry is loaded
leaves that entry with a stale stamp.

The cache unreachable: no entry is used (every call reads its rows). An entry also expires after
ENTRY_TTL_S, which bounds what a replacement lost with the cache could keep serving."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import Organization
from providers.llm.types import ProviderSettings
from providers.models import APIProviderConfig

logger = logging.getLogger(__name__)

ENTRY_TTL_S = 30.0
MAX_ENTRIES = 4096  # past this many the oldest go first

Resolved = tuple[APIProviderConfig | None, ProviderSettings]


@dataclass
class _Entry:
    organization_id: str
    resolved: Resolved
    stamp: str
    loaded_at: float


_entries: dict[Hashable, _Entry] = {}
_entries_lock = threading.Lock()  # the ledger's writer threads and request threads change them


def stamp_key(organization_id: str) -> str:
    return f"provider-stamp:{organization_id}"


def provider_cached(organization_id: str, key: Hashable, load: Callable[[], Resolved]) -> Resolved:
    """What `load()` resolves for `key` (of `organization_id`'s configs), from this process's entry
    while the organization's stamp is unchanged, else from `load()`. A refusal `load()` raises is
    not kept."""
    stamp = _stamp(organization_id)
    entry = _entries.get(key)
    fresh = entry is not None and time.monotonic() - entry.loaded_at < ENTRY_TTL_S
    if fresh and stamp is not None and entry.stamp == stamp:
        return entry.resolved
    resolved = load()
    if stamp is not None:
        _remember(key, _Entry(organization_id, resolved, stamp, time.monotonic()))
    return resolved


def _remember(key: Hashable, entry: _Entry) -> None:
    with _entries_lock:
        _entries.pop(key, None)
        _entries[key] = entry
        while len(_entries) > MAX_ENTRIES:
            _entries.pop(next(iter(_entries)), None)


def _stamp(organization_id: str) -> str | None:
    """The organization's stamp (a new one if the cache has none); None when the cache is down."""
    try:
        stamp = cache.get(stamp_key(organization_id))
        if stamp is None:
            cache.add(stamp_key(organization_id), uuid.uuid4().hex, timeout=None)
            stamp = cache.get(stamp_key(organization_id))
    except Exception:
        logger.warning("Cache unavailable: provider configs of %s read from the database", organization_id)
        return None
    return stamp


def configs_changed(organization_ids: Iterable[str]) -> None:
    """Every process resolves these organizations' configs anew on their next call: their stamps
    are replaced now and once the current transaction (if any) has committed."""
    ids = sorted({str(pk) for pk in organization_ids if pk})
    if not ids:
        return
    _stamps_replace(ids)
    transaction.on_commit(lambda: _stamps_replace(ids))


def _stamps_replace(organization_ids: list[str]) -> None:
    with _entries_lock:
        for key in [key for key, entry in _entries.items() if entry.organization_id in organization_ids]:
            del _entries[key]
    try:
        cache.set_many({stamp_key(pk): uuid.uuid4().hex for pk in organization_ids}, timeout=None)
    except Exception:
        logger.warning(
            "Cache unavailable: other processes may use the provider configs of %s for up to %s s as before",
            ", ".join(organization_ids),
            ENTRY_TTL_S,
        )


def _config_written(sender, instance: APIProviderConfig, **kwargs) -> None:
    configs_changed([instance.organization_id])


def _organization_written(sender, instance: Organization, **kwargs) -> None:
    configs_changed([instance.pk])


def signals_connect() -> None:
    """Connected once per process (at import): writes through the ORM replace the stamps."""
    for signal in (post_save, post_delete):
        signal.connect(_config_written, sender=APIProviderConfig, dispatch_uid="provider_cache.config")
        signal.connect(_organization_written, sender=Organization, dispatch_uid="provider_cache.organization")


signals_connect()
