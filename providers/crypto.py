"""Encryption of provider keys at rest: MultiFernet over STUDIO_FERNET_KEYS (newest key first
encrypts; every listed key decrypts, so keys can be rotated without downtime)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


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
