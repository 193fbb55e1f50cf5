"""What the adapters on the official SDKs share: the vetted, pooled client and the error boundary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from providers.llm.clients import cached_client
from providers.llm.deadline import elapsed_ms
from providers.llm.errors import translate_error
from providers.llm.types import InvalidApiKey, LLMError, ProviderSettings, ValidationResult
from providers.llm.urlsafety import check_base_url

LIST_MODELS_TIMEOUT_S = 20.0
LIST_MODELS_MAX_RETRIES = 1


class SDKAdapter:
    """Base of the OpenAI-family and Anthropic adapters; subclasses build the SDK client."""

    def __init__(self, settings: ProviderSettings, *, base_url: str, api_key: str):
        self.settings = settings
        self.base_url = base_url
        self.api_key = api_key  # the settings' key, or a placeholder for servers that need none

    def build_client(self, settings: ProviderSettings) -> Any:
        """A new SDK client for these settings (called once per settings and event loop)."""
        raise NotImplementedError

    async def list_models(self) -> list[str]:
        """The ids of the models this key can use, sorted."""
        with self.errors_translated(LIST_MODELS_TIMEOUT_S):
            async with asyncio.timeout(LIST_MODELS_TIMEOUT_S):
                client = await self.client(max_retries=LIST_MODELS_MAX_RETRIES)
                models = client.models.list(timeout=self.http_timeout(LIST_MODELS_TIMEOUT_S))
                return sorted([model.id async for model in models])

    async def validate(self) -> ValidationResult:
        """Check the key by listing models; a rejected key is a result, not an exception."""
        started = time.perf_counter()
        try:
            models = await self.list_models()
        except LLMError as error:
            return ValidationResult(
                valid=False, latency_ms=elapsed_ms(started), error=error.message, error_code=error.code
            )
        return ValidationResult(valid=True, models=tuple(models), latency_ms=elapsed_ms(started))

    async def client(self, *, max_retries: int) -> Any:
        """The pooled SDK client with this call's retry budget, after vetting the base URL."""
        if not self.api_key:
            raise InvalidApiKey("no API key is configured for this provider")
        # Checked on every call, not only when the URL is saved: DNS answers change.
        await check_base_url(self.base_url, allow_private=self.settings.allow_private_urls)
        pooled = cached_client(self.settings, lambda settings: PooledClient(self.build_client(settings)))
        return pooled.with_retries(max_retries)

    def http_timeout(self, timeout_s: float) -> httpx2.Timeout:
        """The SDK's per-attempt timeout of a call (the call's total deadline is kept around it)."""
        return httpx2.Timeout(timeout_s, connect=self.settings.connect_timeout_s)

    @contextmanager
    def errors_translated(self, timeout_s: float) -> Iterator[None]:
        """Turn anything a provider call raises into an `LLMError` that never quotes the key."""
        try:
            yield
        except Exception as exc:
            raise translate_error(exc, api_key=self.settings.api_key, timeout_s=timeout_s) from None


class PooledClient:
    """An SDK client and its variants per retry budget, all on the first one's connection pool.

    The variants are kept because a fresh `with_options` copy per call would look up the platform
    headers again, in a worker thread, on its first request.
    """

    def __init__(self, client: Any):
        self._client = client
        self._by_retries: dict[int, Any] = {}

    def with_retries(self, max_retries: int) -> Any:
        """The client that retries up to `max_retries` times: connect errors, 408/409/429
        (honouring Retry-After) and 5xx, with jittered backoff."""
        client = self._by_retries.get(max_retries)
        if client is None:
            client = self._by_retries[max_retries] = self._client.with_options(max_retries=max_retries)
        return client

    async def close(self) -> None:
        await self._client.close()
