"""The provider configs resolved in this server process, kept between calls, so that an LLM call
reads no row and decrypts no key while its organization's configs are unchanged: (organization,
user, kind, named config) -> the config and its adapter settings, the decrypted key included.

A `studio.stamps.StampedMemo` scoped by organization: the decrypted key lives only in this
process's memory, the shared cache holds a random stamp per organization. Every write of a
provider config or of its organization (create, update, deactivate, delete; model signals, so the
admin's writes too, and `configs_changed` for bulk writes such as key rotation) replaces the
stamp, so the next call in any process resolves the config again."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from django.db.models.signals import post_delete, post_save

from accounts.models import Organization
from providers.llm.types import ProviderSettings
from providers.models import APIProviderConfig
from studio.stamps import StampedMemo

Resolved = tuple[APIProviderConfig | None, ProviderSettings]

CONFIGS = StampedMemo("provider")


def provider_cached(organization_id: str, key: Hashable, load: Callable[[], Resolved]) -> Resolved:
    """What `load()` resolves for `key` (of `organization_id`'s configs), from this process's entry
    while the organization's configs are unchanged, else from `load()`. A refusal `load()` raises
    is not kept."""
    return CONFIGS.get(organization_id, key, load, keep=lambda resolved: True)


def configs_changed(organization_ids: Iterable[str]) -> None:
    """Every process resolves these organizations' configs anew on their next call."""
    CONFIGS.changed(organization_ids)


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
