"""The `mock` provider: the product's documented, deterministic, offline test double.

`request.provider_options` (the agent config's `provider` section) drives it:

- `responses`: a script, answered by `request.turn` (turn N gets `responses[N]`). Each item is
  `{"response": "text"}`, `{"response": {...}}` (a mapping: its JSON is the text and it is `parsed`),
  `{"tool_calls": [{"name": ..., "arguments": {...}}]}` (optionally with a `response` too), or
  `{"error": "rate_limited" | "timeout" | "provider_error" | "invalid_api_key", "message": ...}`,
  which raises the matching `LLMError`.
- Past the end of the script (or without one), answers are derived from the last user message: an
  object conforming to `json_schema` when there is one, else `"Mock answer to: <snippet>"`.
- `latency_ms`: simulated latency (spread over the chunks when streaming).

Token counts are ceil(characters / 4), at least 1; the model is `mock-1` unless the request names one.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from providers.llm.deadline import deadline_in, elapsed_ms
from providers.llm.jsontext import parse_json
from providers.llm.schema_sample import sample_for_schema, snippet
from providers.llm.types import (
    Completion,
    CompletionRequest,
    Delta,
    InvalidApiKey,
    LLMError,
    ProviderError,
    ProviderRateLimited,
    ProviderSettings,
    ProviderTimeout,
    ToolCall,
    Usage,
    ValidationResult,
)

MOCK_MODEL = "mock-1"
SCRIPTED_ERRORS: dict[str, type[LLMError]] = {
    "rate_limited": ProviderRateLimited,
    "timeout": ProviderTimeout,
    "provider_error": ProviderError,
    "invalid_api_key": InvalidApiKey,
}


def estimate_tokens(text: str) -> int:
    """ceil(characters / 4), at least 1: the mock's token count."""
    return max(1, math.ceil(len(text) / 4))


class MockAdapter:
    """Answers from the script in `provider_options`, or derives them from the input; no network."""

    def __init__(self, settings: ProviderSettings):
        self.settings = settings

    async def complete(self, request: CompletionRequest) -> Completion:
        """The scripted or derived answer after the simulated latency."""
        started = time.perf_counter()
        await _simulate_latency(_latency_s(request), deadline_in(request.timeout_s), request.timeout_s)
        return _answer(request, started)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        """The answer word by word, the latency spread over the words, then the `Completion`."""
        started = time.perf_counter()
        deadline = deadline_in(request.timeout_s)
        completion = _answer(request, started)
        pieces = re.findall(r"\S+\s*|\s+", completion.text) or [""]
        for piece in pieces:
            await _simulate_latency(_latency_s(request) / len(pieces), deadline, request.timeout_s)
            if piece:
                yield Delta(piece)
        yield replace(completion, latency_ms=elapsed_ms(started))

    async def list_models(self) -> list[str]:
        return [MOCK_MODEL]

    async def validate(self) -> ValidationResult:
        return ValidationResult(valid=True, models=(MOCK_MODEL,))


async def _simulate_latency(seconds: float, deadline: float, timeout_s: float) -> None:
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.sleep(seconds)
    except TimeoutError:
        raise ProviderTimeout(f"the provider did not answer within {timeout_s:g} s") from None


def _latency_s(request: CompletionRequest) -> float:
    return float(request.provider_options.get("latency_ms", 0)) / 1000


def _script_item(request: CompletionRequest) -> Mapping[str, Any] | None:
    responses = request.provider_options.get("responses") or []
    if not isinstance(responses, list | tuple):
        raise ProviderError("the mock's responses must be a list")
    if request.turn >= len(responses):
        return None
    item = responses[request.turn]
    if not isinstance(item, Mapping) or not {"response", "tool_calls", "error"} & item.keys():
        raise ProviderError(f"mock script item {request.turn} needs a response, tool_calls or error")
    if not all(isinstance(call, Mapping) and "name" in call for call in item.get("tool_calls", ())):
        raise ProviderError(f"every tool call of mock script item {request.turn} needs a name")
    return item


def _answer(request: CompletionRequest, started: float) -> Completion:
    item = _script_item(request)
    if item is not None and "error" in item:
        raise _scripted_error(item)
    text, parsed, calls = _scripted(item, request) if item is not None else _derived(request)
    prompt = "".join(message.content for message in request.messages)
    return Completion(
        text=text,
        model=request.model or MOCK_MODEL,
        usage=Usage(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(text)),
        finish_reason="tool_calls" if calls else "stop",
        parsed=parsed,
        tool_calls=calls,
        latency_ms=elapsed_ms(started),
    )


def _scripted_error(item: Mapping[str, Any]) -> LLMError:
    error_class = SCRIPTED_ERRORS.get(item["error"], ProviderError)
    message = item.get("message") or f"scripted mock error: {item['error']}"
    return error_class(message, retry_after=item.get("retry_after"))


def _scripted(item: Mapping[str, Any], request: CompletionRequest) -> tuple[str, Any, tuple[ToolCall, ...]]:
    response = item.get("response", "")
    calls = tuple(
        ToolCall(
            id=f"call_{request.turn}_{index}", name=call["name"], arguments=dict(call.get("arguments", {}))
        )
        for index, call in enumerate(item.get("tool_calls", ()))
    )
    if isinstance(response, Mapping):
        return json.dumps(response), dict(response), calls
    text = str(response)
    return text, parse_json(text) if request.json_schema is not None else None, calls


def _derived(request: CompletionRequest) -> tuple[str, Any, tuple[ToolCall, ...]]:
    source = _last_user_message(request)
    if request.json_schema is not None:
        document = sample_for_schema(request.json_schema, source)
        return json.dumps(document), document, ()
    return f"Mock answer to: {snippet(source)}", None, ()


def _last_user_message(request: CompletionRequest) -> str:
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")
