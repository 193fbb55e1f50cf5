"""The keys of deployments admitted in this server process, kept between calls, so that a call reads
no row to be admitted: a key's digest -> its deployment (with its organization and, once asked, its
typed snapshot).

An entry is used only while the deployment's stamp in the shared cache (Redis, with several
processes) is the one it was loaded under. Every write of a deployment, of one of its keys or of its
organization (stop, start, redeploy, key revoke, suspension, delete; model signals, so the admin's
writes too) replaces the stamp, once at once and again when its transaction has committed, so the
next call in any process loads the rows again and sees the change. The stamp is read before the
rows are, so a write committing while an entry is loaded leaves that entry with a stale stamp.

The cache unreachable: no entry is used (every call reads its rows, and the rate limiter refuses
it anyway). An entry also expires after ENTRY_TTL_S, which bounds what a replacement lost with the
cache (down while a write committed) could keep serving."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import Organization
from deployments.keys import key_hash, key_matches, key_prefix
from deployments.models import Deployment, DeploymentKey

logger = logging.getLogger(__name__)

ENTRY_TTL_S = 30.0
MAX_ENTRIES = 4096  # only valid keys are kept; past this many the oldest go first


@dataclass
class AdmittedKey:
    """A key of a deployment as last loaded: the deployment, and when the key was last used."""

    key_id: str
    deployment: Deployment
    last_used_at: datetime | None
    stamp: str | None = None
    loaded_at: float = 0.0


_entries: dict[str, AdmittedKey] = {}


def stamp_key(name: str) -> str:
    return f"deployment-stamp:{name}"


def admitted_key(*, name: str, key: str) -> AdmittedKey | None:
    """The active key `key` of the deployment named `name` (None: no such key), from this process's
    entries while the deployment's stamp is unchanged, else from the database."""
    digest = key_hash(key)
    stamp = _stamp(name)
    entry = _entries.get(digest)
    if (
        entry is not None
        and stamp is not None
        and entry.stamp == stamp
        and entry.deployment.name == name
        and time.monotonic() - entry.loaded_at < ENTRY_TTL_S
    ):
        return entry
    entry = _key_load(name=name, key=key)
    if entry is None or stamp is None:
        return entry
    entry.stamp, entry.loaded_at = stamp, time.monotonic()
    _remember(digest, entry)
    return entry


def _key_load(*, name: str, key: str) -> AdmittedKey | None:
    candidates = DeploymentKey.objects.select_related("deployment__organization").filter(
        deployment__name=name, prefix=key_prefix(key), revoked_at__isnull=True
    )
    row = next((row for row in candidates if key_matches(key, row.key_hash)), None)
    return None if row is None else AdmittedKey(row.pk, row.deployment, row.last_used_at)


def _remember(digest: str, entry: AdmittedKey) -> None:
    _entries.pop(digest, None)
    _entries[digest] = entry
    while len(_entries) > MAX_ENTRIES:
        _entries.pop(next(iter(_entries)), None)


def _stamp(name: str) -> str | None:
    """The deployment's stamp (a new one if the cache has none); None when the cache is down."""
    try:
        stamp = cache.get(stamp_key(name))
        if stamp is None:
            cache.add(stamp_key(name), uuid.uuid4().hex, timeout=None)
            stamp = cache.get(stamp_key(name))
    except Exception:
        logger.warning("Cache unavailable: deployment %s admitted from the database", name, exc_info=True)
        return None
    return stamp


def deployments_changed(names) -> None:
    """Every process loads these deployments anew on their next call: their stamps are replaced now
    and once the current transaction (if any) has committed."""
    names = [name for name in names if name]
    if not names:
        return
    _stamps_replace(names)
    transaction.on_commit(lambda: _stamps_replace(names))


def _stamps_replace(names: list[str]) -> None:
    for digest, entry in list(_entries.items()):
        if entry.deployment.name in names:
            _entries.pop(digest, None)
    try:
        cache.set_many({stamp_key(name): uuid.uuid4().hex for name in names}, timeout=None)
    except Exception:
        logger.warning(
            "Cache unavailable: other processes may admit calls to %s for up to %s s as before",
            ", ".join(names),
            ENTRY_TTL_S,
            exc_info=True,
        )


def _deployment_written(sender, instance: Deployment, **kwargs) -> None:
    deployments_changed([instance.name])


def _key_written(sender, instance: DeploymentKey, **kwargs) -> None:
    deployments_changed([_deployment_name(instance)])


def _deployment_name(key: DeploymentKey) -> str | None:
    if DeploymentKey.deployment.is_cached(key):
        return key.deployment.name
    return Deployment.objects.filter(pk=key.deployment_id).values_list("name", flat=True).first()


def _organization_written(sender, instance: Organization, **kwargs) -> None:
    names = Deployment.objects.filter(organization_id=instance.pk).values_list("name", flat=True)
    deployments_changed(list(names))


def signals_connect() -> None:
    """Connected once per process (at import): writes through the ORM replace the stamps."""
    for signal in (post_save, post_delete):
        signal.connect(_deployment_written, sender=Deployment, dispatch_uid="admission.deployment")
        signal.connect(_key_written, sender=DeploymentKey, dispatch_uid="admission.key")
    post_save.connect(_organization_written, sender=Organization, dispatch_uid="admission.organization")


signals_connect()
