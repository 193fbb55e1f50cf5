"""Writes of provider configs: create, update, delete, validate, key rotation. Each one audits itself.

A key is validated against the provider before it is stored, and leaves these functions only
encrypted: callers, responses, audit rows and logs see its `key_hint` at most. A stored key is sent
only to the origin (scheme, host, port) of the base URL it was given with: pointing the config at
another origin takes the key again, in the same request."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, transaction

from observability.recorder import jsonable
from providers.aio import run_sync
from providers.config_cache import configs_changed
from providers.crypto import encrypt_secret, key_hint, secrets_rotate
from providers.gateway import provider_settings
from providers.llm.openai_adapter import KEYLESS_KINDS
from providers.llm.registry import create_adapter
from providers.llm.types import (
    InvalidApiKey,
    LLMError,
    ProviderError,
    ProviderRateLimited,
    ProviderSettings,
    ProviderTimeout,
    UnsafeProviderUrl,
    ValidationResult,
)
from providers.llm.urlsafety import check_base_url_sync, check_no_credentials, url_origin
from providers.models import APIProviderConfig
from studio.api.errors import ApiError
from studio.api.permissions import has_role
from studio.audit import audit_record
from studio.changes import apply_changes

NO_KEY_KINDS = (*KEYLESS_KINDS, "mock")
BASE_URL_KINDS = ("azure_openai", "openai_compatible")
# Changing any of these points the key somewhere new, so the config is validated again.
CONNECTION_FIELDS = ("api_key_encrypted", "api_base_url", "api_version")
AUDITED_FIELDS = (
    "provider",
    "name",
    "user",
    "key_hint",
    "api_base_url",
    "api_version",
    "default_model",
    "budget_limit_usd",
    "is_default",
    "is_active",
)
# How a validation that failed for another reason than the key itself is reported.
UNREACHABLE_STATUS = {
    error.code: error.status
    for error in (ProviderError, ProviderTimeout, ProviderRateLimited, UnsafeProviderUrl)
}


def _require_manage(actor, config: APIProviderConfig) -> None:
    """Admins manage organization-wide configs; a personal config is managed by its owner alone."""
    allowed = has_role(actor, "member") and (
        config.user_id == actor.pk if config.user_id else has_role(actor, "admin")
    )
    if not allowed:
        message = "Only admins manage organization-wide provider configs; members may hold personal ones."
        raise ApiError(403, "permission_denied", message)


def _require_validation_choice(actor, validate: bool) -> None:
    if not validate and not has_role(actor, "admin"):
        raise ApiError(403, "permission_denied", "Only admins may store a key without validating it.")


def _check_storable(config: APIProviderConfig) -> None:
    """What a config needs before it is stored: a key, a base URL where its kind has no default,
    a base URL that cannot reach into our own network, and no personal default."""
    if config.provider not in NO_KEY_KINDS and not config.api_key_encrypted:
        raise ApiError(
            400,
            "validation_error",
            "An API key is required.",
            fields={"api_key": ["This field is required."]},
        )
    if config.provider in BASE_URL_KINDS and not config.api_base_url:
        message = f"A {config.provider} provider needs a base URL."
        raise ApiError(400, "validation_error", message, fields={"api_base_url": [message]})
    if config.is_default and config.user_id:
        message = "Only organization-wide configs can be the default of their kind."
        raise ApiError(400, "validation_error", message, fields={"is_default": [message]})
    if config.api_base_url:
        try:
            check_base_url_sync(config.api_base_url, allow_private=settings.ALLOW_PRIVATE_PROVIDER_URLS)
            check_no_credentials(config.api_base_url)
        except LLMError as error:  # unsafe, or a host that does not resolve and so cannot be vetted
            raise ApiError(
                400, UnsafeProviderUrl.code, error.message, fields={"api_base_url": [error.message]}
            ) from None


def _moves_the_key(config: APIProviderConfig, candidate: APIProviderConfig) -> bool:
    """Whether the change would send the stored key somewhere it was not given for: another origin
    of the base URL, or (issue 11) another API version of an Azure deployment."""
    if url_origin(candidate.api_base_url) != url_origin(config.api_base_url):
        return True
    return config.provider == "azure_openai" and candidate.api_version != config.api_version


def _require_key_to_move(config: APIProviderConfig, candidate: APIProviderConfig) -> None:
    if _moves_the_key(config, candidate):
        message = (
            "Changing the scheme, host or port of the base URL (or an Azure API version) needs the "
            "API key in the same request: a stored key is only sent where it was given."
        )
        raise ApiError(
            400,
            "api_key_required",
            message,
            fields={"api_key": ["Required to change where the key is sent."]},
        )


def _validate_settings(provider: ProviderSettings) -> ValidationResult:
    return run_sync(create_adapter(provider).validate)


def _require_valid_key(config: APIProviderConfig) -> None:
    """Refuses a config whose key the provider does not accept, with the provider's reason."""
    result = _validate_settings(provider_settings(config))
    if result.valid:
        return
    reason = result.error or "the provider did not accept the key"
    if result.error_code in UNREACHABLE_STATUS:
        message = f"The key could not be validated: {reason}."
        raise ApiError(UNREACHABLE_STATUS[result.error_code], result.error_code, message)
    message = f"The API key is not valid: {reason}."
    raise ApiError(400, InvalidApiKey.code, message, fields={"api_key": [reason]})


def _take_default(config: APIProviderConfig, *, actor) -> None:
    """Unsets the previous default of the config's kind (the DB constraint stays the safety net)."""
    previous = (
        APIProviderConfig.objects.select_for_update()
        .filter(organization_id=config.organization_id, provider=config.provider, is_default=True)
        .exclude(pk=config.pk)
    )
    for other in previous:
        audit_record(
            actor=actor,
            organization_id=other.organization_id,
            operation="update",
            instance=other,
            changes=apply_changes(other, {"is_default": False}),
        )


def _audited(config: APIProviderConfig) -> dict:
    return {name: jsonable(config.serializable_value(name)) for name in AUDITED_FIELDS}


@contextmanager
def _saving() -> Iterator[None]:
    """A transaction in which a concurrent default of the same kind is a 409, not a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise ApiError(
            409, "conflict", "Another default of this kind was set at the same time. Try again."
        ) from None


def provider_config_create(
    *,
    actor,
    provider: str,
    name: str,
    api_key: str = "",
    personal: bool = False,
    validate: bool = True,
    **fields,
) -> APIProviderConfig:
    """Stores a provider config after validating its key with the provider (unless an admin says
    `validate=False`); a personal one belongs to `actor`. Nothing is stored when a check fails."""
    config = APIProviderConfig(
        organization_id=actor.organization_id,
        user=actor if personal else None,
        provider=provider,
        name=name,
        api_key_encrypted=encrypt_secret(api_key) if api_key else "",
        key_hint=key_hint(api_key),
        created_by=actor,
        **fields,
    )
    config.pin_key_origin()
    _require_manage(actor, config)
    _require_validation_choice(actor, validate)
    _check_storable(config)
    if validate:
        _require_valid_key(config)

    with _saving():
        if config.is_default:
            _take_default(config, actor=actor)
        config.save(force_insert=True)
        audit_record(
            actor=actor,
            organization_id=config.organization_id,
            operation="create",
            instance=config,
            changes={**_audited(config), "validated": validate},
        )
    return config


def provider_config_update(
    *, actor, config: APIProviderConfig, api_key: str | None = None, validate: bool = True, **fields
) -> APIProviderConfig:
    """Changes a config; a new key, base URL or API version is validated again unless an admin
    says `validate=False`."""
    _require_manage(actor, config)
    _require_validation_choice(actor, validate)
    if api_key is not None:
        fields.update(api_key_encrypted=encrypt_secret(api_key), key_hint=key_hint(api_key))
    candidate = copy.copy(config)
    for name, value in fields.items():
        setattr(candidate, name, value)
    _check_storable(candidate)
    if api_key is None and config.api_key_encrypted:
        _require_key_to_move(config, candidate)  # the stored key keeps the origin it was given for
    else:
        candidate.pin_key_origin()  # the key given now goes where the config points
        fields["key_origin"] = candidate.key_origin
    if validate and any(getattr(config, name) != getattr(candidate, name) for name in CONNECTION_FIELDS):
        _require_valid_key(candidate)

    with _saving():
        if fields.get("is_default"):
            _take_default(config, actor=actor)
        changes = apply_changes(config, fields)
        if changes.pop("api_key_encrypted", None) is not None:
            changes["api_key"] = "changed"
        if changes:
            audit_record(
                actor=actor,
                organization_id=config.organization_id,
                operation="update",
                instance=config,
                changes=jsonable(changes),
            )
    return config


@transaction.atomic
def provider_config_delete(*, actor, config: APIProviderConfig) -> None:
    """Deletes a config; runs and spans keep its id (they reference it, not a foreign key)."""
    _require_manage(actor, config)
    audit_record(
        actor=actor,
        organization_id=config.organization_id,
        operation="delete",
        instance=config,
        changes={"name": config.name, "provider": config.provider},
    )
    config.delete()


def provider_config_validate(*, config: APIProviderConfig) -> ValidationResult:
    """Asks the provider whether the stored key works, and which models it offers."""
    return _validate_settings(provider_settings(config))


def provider_keys_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypts every stored key with the newest Fernet key (`secrets_rotate`); how many."""
    return secrets_rotate(
        APIProviderConfig.objects.all(),
        "api_key_encrypted",
        batch_size=batch_size,
        on_batch=lambda batch: configs_changed(config.organization_id for config in batch),
    )
