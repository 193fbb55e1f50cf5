"""Anthropic's Messages API on the official async SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import anthropic

from providers.llm.anthropic_format import completion_from_message, messages_params, streamed_text
from providers.llm.deadline import before_deadline, deadline_in, elapsed_ms
from providers.llm.sdk_adapter import SDKAdapter
from providers.llm.transport import ResponseTooLarge, build_http_client
from providers.llm.types import Completion, CompletionRequest, Delta, ProviderSettings

ANTHROPIC_BASE_URL = "https://api.anthropic.com"


class AnthropicAdapter(SDKAdapter):
    """Messages over `anthropic.AsyncAnthropic`."""

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings, base_url=settings.base_url or ANTHROPIC_BASE_URL, api_key=settings.api_key)

    def build_client(self, settings: ProviderSettings) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            http_client=build_http_client(anthropic, settings),
            middleware=[refusals_are_final],
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        """One message within the request's total deadline."""
        started = time.perf_counter()
        with self.errors_translated(request.timeout_s):
            async with asyncio.timeout(request.timeout_s):
                client = await self.client(max_retries=request.max_retries)
                message = await client.messages.create(
                    **messages_params(request), timeout=self.http_timeout(request.timeout_s)
                )
            return completion_from_message(message, request, latency_ms=elapsed_ms(started))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        """Text deltas (or the structured answer's JSON pieces) as they arrive, then the `Completion`."""
        started = time.perf_counter()
        deadline = deadline_in(request.timeout_s)
        with self.errors_translated(request.timeout_s):
            async with AsyncExitStack() as exit_stack:
                async with asyncio.timeout_at(deadline):
                    client = await self.client(max_retries=request.max_retries)
                    # As with OpenAI, the SDK's retry loop ends when the response headers are in: the
                    # events are read after `_request` returned the stream, so it is never replayed.
                    events = await exit_stack.enter_async_context(
                        client.messages.stream(
                            **messages_params(request), timeout=self.http_timeout(request.timeout_s)
                        )
                    )
                async for event in before_deadline(events, deadline):
                    text = streamed_text(event, events.current_message_snapshot, request)
                    if text:
                        yield Delta(text)
                message = await events.get_final_message()
            yield completion_from_message(message, request, latency_ms=elapsed_ms(started))


async def refusals_are_final(request, call_next):
    """Middleware: the SDK wraps errors raised by the transport as connection errors and retries
    them; a body we refused as too large would only be refused again, so it is raised as is."""
    try:
        return await call_next(request)
    except anthropic.APIConnectionError as error:
        if isinstance(error.__cause__, ResponseTooLarge):
            raise error.__cause__ from None
        raise
