"""A few seconds' cache of the user (with their organization) behind an access token.

Authentication reads the user and organization on every request (accounts.authentication). With
`settings.AUTH_CACHE_SECONDS` > 0 it reads them from Django's cache instead, for that long at most.
On by default only with a cache that every server process shares (Redis): a per-process cache could
not be invalidated in the other processes.

Invalidation makes a change take effect on the very next request: every save or delete of a user,
and of an organization (for each of its users), replaces the cached entry by a tombstone once the
change is committed (signals, so that services, the admin and commands are all covered). A reader
stores what it read with `add`, which never replaces a tombstone: a request that read the row
before the change committed cannot put the old row back. While the tombstone lasts that user's
requests read the database.

The cache is an optimisation only: when it fails (Redis unreachable) the database answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

TOMBSTONE = "changed"
TOMBSTONE_SECONDS = 5  # far longer than a request takes between reading a row and storing it


def _key(user_id) -> str:
    return f"auth:user:{user_id}"


def cached_user(user_id, load: Callable):
    """The cached user of `user_id`, or `load(user_id)` (None: no such user), stored for later
    requests unless the user changed meanwhile."""
    seconds = settings.AUTH_CACHE_SECONDS
    if seconds <= 0:
        return load(user_id)
    key = _key(user_id)
    try:
        found = cache.get(key)
    except Exception:  # the cache is down: the database answers
        logger.warning("Authentication cache unreachable; reading the user from the database")
        return load(user_id)
    if found is not None and found != TOMBSTONE:
        return found
    user = load(user_id)
    if user is not None and found is None:
        try:
            cache.add(key, user, seconds)
        except Exception:
            logger.warning("Authentication cache unreachable; the user is not cached")
    return user


def forget_users(user_ids: Iterable) -> None:
    """Tombstones the users' entries once the current transaction commits (now, outside one)."""
    keys = [_key(user_id) for user_id in user_ids]
    if keys and settings.AUTH_CACHE_SECONDS > 0:
        transaction.on_commit(lambda: _tombstone(keys))


def _tombstone(keys: list[str]) -> None:
    try:
        cache.set_many(dict.fromkeys(keys, TOMBSTONE), TOMBSTONE_SECONDS)
    except Exception:
        # Entries already cached live AUTH_CACHE_SECONDS at most.
        logger.warning("Authentication cache unreachable; %d user entries not invalidated", len(keys))


def _user_changed(sender, instance, **kwargs) -> None:
    forget_users([instance.pk])


def _organization_changed(sender, instance, **kwargs) -> None:
    from accounts.models import User

    if settings.AUTH_CACHE_SECONDS > 0:
        forget_users(User.objects.filter(organization_id=instance.pk).values_list("pk", flat=True))


def connect() -> None:
    """Connects the invalidation to the models' saves and deletes (AccountsConfig.ready)."""
    from accounts.models import Organization, User

    for name, signal in (("save", post_save), ("delete", post_delete)):
        signal.connect(_user_changed, sender=User, dispatch_uid=f"auth_cache_user_{name}")
        signal.connect(_organization_changed, sender=Organization, dispatch_uid=f"auth_cache_org_{name}")
