"""Encryption of secrets at rest (provider keys, MCP servers' auth headers, webhook signing
secrets): MultiFernet over STUDIO_FERNET_KEYS (newest key first encrypts; every listed key
decrypts, so keys can be rotated without downtime: `secrets_rotate`, `manage.py rotate_secrets`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from studio.audit import audit_record


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FERNET_KEYS))


def encrypt_secret(secret: str) -> str:
    return _current().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    return _current().decrypt(token.encode()).decode() if token else ""


def reencrypt_secret(token: str) -> str:
    """The same secret under the newest key."""
    return _current().rotate(token.encode()).decode()


def key_hint(secret: str) -> str:
    return secret[-4:] if len(secret) >= 8 else ""


def secrets_rotate(
    rows: QuerySet, field: str, *, batch_size: int = 500, on_batch: Callable[[list], None] | None = None
) -> int:
    """Re-encrypts `field` of every row of `rows` (those holding a secret) with the newest key, a
    locked batch per transaction, then audits it; how many. `on_batch` hears each batch (bulk
    updates send no signals). Safe to run again."""
    rotated, last_pk = 0, ""
    while batch := _rotate_batch(rows.exclude(**{field: ""}), field, after_pk=last_pk, size=batch_size):
        if on_batch is not None:
            on_batch(batch)
        rotated, last_pk = rotated + len(batch), batch[-1].pk
    audit_record(
        actor=None,
        organization_id=None,
        operation="rotate_keys",
        model_name=rows.model.__name__,
        changes={"rotated": rotated},
    )
    return rotated


def _rotate_batch(rows: QuerySet, field: str, *, after_pk: str, size: int) -> list:
    with transaction.atomic():
        batch = list(rows.select_for_update().filter(pk__gt=after_pk).order_by("pk")[:size])
        for row in batch:
            setattr(row, field, reencrypt_secret(getattr(row, field)))
        rows.model.objects.bulk_update(batch, [field])
    return batch
