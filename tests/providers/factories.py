from __future__ import annotations

from decimal import Decimal

from providers.crypto import encrypt_secret, key_hint
from providers.llm.urlsafety import url_origin
from providers.models import APIProviderConfig


def make_provider_config(
    organization, *, provider="openai_compatible", api_key="test-key", budget=None, **fields
) -> APIProviderConfig:
    fields.setdefault("name", f"{provider} account")
    return APIProviderConfig.objects.create(
        organization=organization,
        provider=provider,
        api_key_encrypted=encrypt_secret(api_key) if api_key else "",
        key_hint=key_hint(api_key or ""),
        key_origin=url_origin(fields.get("api_base_url", "")),  # the key was given with this URL
        budget_limit_usd=Decimal(budget) if budget is not None else None,
        **fields,
    )
