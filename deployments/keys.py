"""Deployment keys: random secrets shown once, stored as a SHA-256 hash, found by their prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_MARK = "sk_deploy_"
PREFIX_LENGTH = len(KEY_MARK) + 8  # the mark and the first 8 random characters: "sk_deploy_ab12cd34"
RANDOM_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    secret: str  # shown to its owner once, never stored
    prefix: str
    hash: str


def key_generate() -> NewKey:
    secret = KEY_MARK + secrets.token_urlsafe(RANDOM_BYTES)
    return NewKey(secret=secret, prefix=key_prefix(secret), hash=key_hash(secret))


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_prefix(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


def key_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(key_hash(secret), stored_hash)


def looks_like_key(secret: str | None) -> bool:
    return bool(secret) and secret.startswith(KEY_MARK) and len(secret) > PREFIX_LENGTH
