"""The keys of deployments admitted in this server process, kept between calls, so that a call reads
no row to be admitted: a key's digest -> its deployment (with its organization and, once asked, its
typed snapshot).

A `studio.stamps.StampedMemo` scoped by deployment name: every write of a deployment, of one of its
keys or of its organization (stop, start, redeploy, key revoke, suspension, delete; model signals,
so the admin's writes too) replaces the deployment's stamp, so the next call in any process loads
the rows again and sees the change. With the cache unreachable every call reads its rows (and the
rate limiter refuses it anyway). From the event loop, a call checks its entry's stamp in the round
trip that counts it against the rate limit (`deployments.calls.deployment_admit_and_begin_async`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models.signals import post_delete, post_save

from accounts.models import Organization
from deployments.keys import key_hash, key_matches, key_prefix
from deployments.models import Deployment, DeploymentKey
from studio.stamps import StampedMemo

KEYS = StampedMemo("deployment")  # only valid keys are kept


@dataclass
class AdmittedKey:
    """A key of a deployment as last loaded: the deployment, and when the key was last used."""

    key_id: str
    deployment: Deployment
    last_used_at: datetime | None


def admitted_key(*, name: str, key: str) -> AdmittedKey | None:
    """The active key `key` of the deployment named `name` (None: no such key), from this process's
    entries while the deployment is unchanged, else from the database."""
    return KEYS.get(name, key_hash(key), lambda: _key_load(name=name, key=key))


def admitted_key_kept(*, name: str, key: str) -> tuple[AdmittedKey, str] | None:
    """This process's entry for `key` of deployment `name` and the stamp it was loaded under,
    unchecked: valid only while the deployment's shared stamp (`stamp_key(name)`) is that one."""
    return KEYS.peek(name, key_hash(key))


def stamp_key(name: str) -> str:
    """The cache key of the deployment's stamp, which every write of it replaces."""
    return KEYS.stamp_key(name)


def _key_load(*, name: str, key: str) -> AdmittedKey | None:
    candidates = DeploymentKey.objects.select_related("deployment__organization").filter(
        deployment__name=name, prefix=key_prefix(key), revoked_at__isnull=True
    )
    row = next((row for row in candidates if key_matches(key, row.key_hash)), None)
    return None if row is None else AdmittedKey(row.pk, row.deployment, row.last_used_at)


def deployments_changed(names) -> None:
    """Every process loads these deployments anew on their next call."""
    KEYS.changed(names)


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
