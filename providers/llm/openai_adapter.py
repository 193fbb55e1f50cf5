"""OpenAI, Azure OpenAI, Ollama and OpenAI-compatible servers, on the official async OpenAI SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import openai

from providers.llm.deadline import before_deadline, deadline_in, elapsed_ms
from providers.llm.openai_format import ChatStream, chat_params, completion_from_response
from providers.llm.sdk_adapter import SDKAdapter
from providers.llm.transport import build_http_client
from providers.llm.types import Completion, CompletionRequest, Delta, ProviderSettings

OPENAI_BASE_URL = "https://api.openai.com/v1"
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
AZURE_API_VERSION = "2024-10-21"
# Local servers ignore the key, but the SDK refuses to run without one.
PLACEHOLDER_KEY = "no-key-required"
KEYLESS_KINDS = ("ollama", "openai_compatible")


class OpenAIAdapter(SDKAdapter):
    """Chat Completions over `openai.AsyncOpenAI` (`AsyncAzureOpenAI` for Azure)."""

    def __init__(self, settings: ProviderSettings):
        api_key = settings.api_key or (PLACEHOLDER_KEY if settings.kind in KEYLESS_KINDS else "")
        super().__init__(settings, base_url=_base_url(settings), api_key=api_key)

    def build_client(self, settings: ProviderSettings) -> openai.AsyncOpenAI:
        http_client = build_http_client(openai, settings)
        if settings.kind == "azure_openai":
            return openai.AsyncAzureOpenAI(
                azure_endpoint=self.base_url,
                api_version=settings.api_version or AZURE_API_VERSION,
                api_key=self.api_key,
                http_client=http_client,
            )
        return openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, http_client=http_client)

    async def complete(self, request: CompletionRequest) -> Completion:
        """One chat completion within the request's total deadline."""
        started = time.perf_counter()
        with self.errors_translated(request.timeout_s):
            async with asyncio.timeout(request.timeout_s):
                client = await self.client(max_retries=request.max_retries)
                response = await client.chat.completions.create(
                    **chat_params(request, kind=self.settings.kind),
                    timeout=self.http_timeout(request.timeout_s),
                )
            return completion_from_response(response, request, latency_ms=elapsed_ms(started))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        """Text deltas as the chunks arrive, then the accumulated `Completion`."""
        started = time.perf_counter()
        deadline = deadline_in(request.timeout_s)
        accumulated = ChatStream(request)
        params = chat_params(request, kind=self.settings.kind)
        with self.errors_translated(request.timeout_s):
            async with asyncio.timeout_at(deadline):
                client = await self.client(max_retries=request.max_retries)
                # The SDK retries inside AsyncAPIClient.request only until the response headers are in;
                # the chunks are read after it returned the stream, outside that loop, so a stream that
                # breaks after part of it arrived is never replayed (and never duplicates text).
                chunks = await client.chat.completions.create(
                    **params,
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=self.http_timeout(request.timeout_s),
                )
            async with chunks:
                async for chunk in before_deadline(chunks, deadline):
                    text = accumulated.add(chunk)
                    if text:
                        yield Delta(text)
            yield accumulated.completion(latency_ms=elapsed_ms(started))


def _base_url(settings: ProviderSettings) -> str:
    if settings.base_url:
        return settings.base_url
    if settings.kind == "openai":
        return OPENAI_BASE_URL
    if settings.kind == "ollama":
        return OLLAMA_BASE_URL
    raise ValueError(f"a {settings.kind} provider needs a base URL")
