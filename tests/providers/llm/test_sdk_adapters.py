"""The contract every SDK-backed adapter keeps, checked against the fake servers with the real SDKs."""

from __future__ import annotations

import time
import traceback

import pytest

from providers.llm.types import (
    Completion,
    CompletionRequest,
    Delta,
    InvalidApiKey,
    LLMError,
    Message,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ToolSpec,
    UnsafeProviderUrl,
)
from tests.fakes.behaviours import (
    answer,
    cut_stream,
    delay,
    drip,
    huge,
    json_answer,
    redirect,
    status,
    tool_calls,
)

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "priority": {"type": "string", "enum": ["low", "high"]},
        "escalate": {"type": "boolean"},
    },
    "required": ["summary", "priority", "escalate"],
}
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
# Not shaped like any known key format, so only exact redaction can hide it.
SECRET_KEY = "ZX81-secret-0042-Q"


def ask(text: str = "My printer is on fire", **options) -> CompletionRequest:
    return CompletionRequest(messages=(Message(role="user", content=text),), model="test-model", **options)


async def collect(adapter, request: CompletionRequest) -> tuple[list[Delta], Completion]:
    items = [item async for item in adapter.stream(request)]
    assert isinstance(items[-1], Completion)
    assert all(isinstance(item, Delta) for item in items[:-1])
    return items[:-1], items[-1]


def keyless_adapter(provider):
    """openai_compatible servers get a placeholder key; OpenAI itself and Anthropic need a real one."""
    if provider.kind == "openai_compatible":
        return provider.adapter(kind="openai", api_key="")
    return provider.adapter(api_key="")


def assert_key_hidden(error: BaseException, key: str) -> None:
    assert error.__suppress_context__
    assert key not in str(error)
    assert key not in repr(error)
    assert key not in "".join(traceback.format_exception(error))


async def test_validate_accepts_the_key_and_lists_the_models(provider):
    result = await provider.adapter().validate()

    assert result.valid
    assert result.models == tuple(sorted(provider.server.models))
    assert result.error is None
    assert result.latency_ms > 0


async def test_validate_reports_a_rejected_key_with_the_providers_reason_but_not_the_key(provider):
    result = await provider.adapter(api_key=SECRET_KEY).validate()

    assert not result.valid
    assert result.error_code == "invalid_api_key"
    assert "rejected the API key" in result.error
    assert SECRET_KEY not in result.error
    assert "[redacted]" in result.error  # the fake quoted the key back; we removed it


async def test_a_call_with_a_rejected_key_raises_invalid_api_key_without_the_key(provider):
    with pytest.raises(InvalidApiKey) as raised:
        await provider.adapter(api_key=SECRET_KEY).complete(ask())

    assert_key_hidden(raised.value, SECRET_KEY)


async def test_a_provider_without_a_key_fails_before_calling(provider):
    with pytest.raises(InvalidApiKey, match="no API key"):
        await keyless_adapter(provider).complete(ask())

    assert provider.server.requests == []


async def test_a_plain_answer_comes_back_with_usage(provider):
    provider.server.enqueue(answer("The printer needs water.", cached_tokens=3))

    completion = await provider.adapter().complete(ask())

    assert completion.text == "The printer needs water."
    assert completion.parsed is None
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens > 0
    assert completion.usage.output_tokens > 0
    assert completion.usage.cached_input_tokens == 3


async def test_structured_output_is_parsed(provider):
    completion = await provider.adapter().complete(ask(json_schema=TICKET_SCHEMA, schema_name="ticket"))

    assert completion.parsed == {
        "summary": "summary: My printer is on fire",
        "priority": "low",
        "escalate": True,
    }
    assert completion.text.startswith("{")
    assert completion.tool_calls == ()


async def test_a_scripted_structured_answer_is_parsed(provider):
    provider.server.enqueue(json_answer({"summary": "fire", "priority": "high", "escalate": True}))

    completion = await provider.adapter().complete(ask(json_schema=TICKET_SCHEMA, schema_name="ticket"))

    assert completion.parsed == {"summary": "fire", "priority": "high", "escalate": True}


async def test_a_structured_answer_that_does_not_parse_leaves_parsed_empty(provider):
    provider.server.enqueue(answer("Sorry, I cannot do JSON today."))

    completion = await provider.adapter().complete(ask(json_schema=TICKET_SCHEMA, schema_name="ticket"))

    assert completion.text == "Sorry, I cannot do JSON today."
    assert completion.parsed is None


async def test_tool_calls_are_decoded(provider):
    provider.server.enqueue(tool_calls({"name": "get_weather", "arguments": {"city": "Oslo"}}))

    completion = await provider.adapter().complete(ask("Weather in Oslo?", tools=(WEATHER_TOOL,)))

    assert [(call.name, call.arguments) for call in completion.tool_calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert completion.tool_calls[0].id
    assert completion.finish_reason == "tool_calls"


async def test_streamed_tool_calls_are_accumulated(provider):
    provider.server.enqueue(tool_calls({"name": "get_weather", "arguments": {"city": "Lima"}}))

    _, completion = await collect(provider.adapter(), ask("Weather in Lima?", tools=(WEATHER_TOOL,)))

    assert [(call.name, call.arguments) for call in completion.tool_calls] == [
        ("get_weather", {"city": "Lima"})
    ]


async def test_streaming_yields_the_deltas_in_order_then_one_completion(provider):
    provider.server.enqueue(answer("alpha beta gamma", chunks=("alpha ", "beta ", "gamma")))

    deltas, completion = await collect(provider.adapter(), ask())

    assert [delta.text for delta in deltas] == ["alpha ", "beta ", "gamma"]
    assert completion.text == "alpha beta gamma"
    assert completion.usage.output_tokens > 0


async def test_deltas_arrive_while_the_provider_is_still_sending(provider):
    provider.server.enqueue(answer("one two three", chunk_delay_s=0.05))

    arrivals = [time.perf_counter() async for _ in provider.adapter().stream(ask())]

    assert arrivals[-1] - arrivals[0] >= 0.15  # buffered, they would all arrive at once


async def test_a_streamed_structured_answer_is_parsed(provider):
    deltas, completion = await collect(
        provider.adapter(), ask(json_schema=TICKET_SCHEMA, schema_name="ticket")
    )

    assert deltas
    assert completion.parsed["priority"] == "low"


async def test_a_rate_limit_is_retried_after_the_retry_after_delay(provider):
    provider.server.enqueue(status(429, retry_after=0.4))
    started = time.perf_counter()

    completion = await provider.adapter().complete(ask())

    assert time.perf_counter() - started >= 0.4
    assert completion.text == "Echo: My printer is on fire"
    assert len(provider.server.requests) == 2


async def test_a_rate_limit_that_outlasts_the_retries_is_reported_with_retry_after(provider):
    provider.server.enqueue(status(429, retry_after=0.05), status(429, retry_after=0.05))

    with pytest.raises(ProviderRateLimited) as raised:
        await provider.adapter().complete(ask(max_retries=1))

    assert raised.value.retry_after == 0.05
    assert raised.value.status == 429
    assert len(provider.server.requests) == 2


async def test_a_server_error_is_retried(provider):
    provider.server.enqueue(status(500, retry_after=0.05))

    completion = await provider.adapter().complete(ask())

    assert completion.text.startswith("Echo:")
    assert len(provider.server.requests) == 2


async def test_a_server_error_that_persists_is_a_provider_error(provider):
    provider.server.enqueue(*[status(500, retry_after=0.05, message="the model is melting")] * 2)

    with pytest.raises(ProviderError, match="HTTP 500.*melting"):
        await provider.adapter().complete(ask(max_retries=1))


async def test_a_slow_provider_times_out_at_the_deadline(provider):
    provider.server.enqueue(delay(5))
    started = time.perf_counter()

    with pytest.raises(ProviderTimeout):
        await provider.adapter().complete(ask(timeout_s=0.5))

    assert time.perf_counter() - started < 3  # the answer would take 5 s (margin for a loaded machine)


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_a_dripping_provider_is_cut_at_the_total_deadline(provider, streaming):
    # A byte every 0.1 s keeps every read within the read timeout: only the total deadline ends it.
    # 1.5 s, so that on a loaded machine the request reaches the server well within it.
    provider.server.enqueue(drip(interval_s=0.1))
    adapter = provider.adapter()
    started = time.perf_counter()

    with pytest.raises(ProviderTimeout):
        if streaming:
            await collect(adapter, ask(timeout_s=1.5))
        else:
            await adapter.complete(ask(timeout_s=1.5))

    assert 1.5 <= time.perf_counter() - started < 5  # the drip never ends (margin for a loaded machine)
    assert len(provider.server.requests) == 1


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_a_response_over_the_size_limit_is_refused_without_retrying(provider, declare_length):
    provider.server.enqueue(huge(300_000, declare_length=declare_length))

    with pytest.raises(ProviderError, match="response too large"):
        await provider.adapter(max_response_bytes=100_000).complete(ask())

    assert len(provider.server.requests) == 1


async def test_a_streamed_response_over_the_size_limit_is_refused(provider):
    provider.server.enqueue(answer("word " * 5_000))

    with pytest.raises(ProviderError, match="response too large"):
        await collect(provider.adapter(max_response_bytes=20_000), ask())


async def test_a_redirect_is_not_followed(provider):
    # Followed, it would succeed: the target is the fake's own model list.
    provider.server.enqueue(redirect(f"{provider.server.url}/v1/models"))

    with pytest.raises(ProviderError, match="redirect"):
        await provider.adapter().list_models()

    assert [request.path for request in provider.server.requests] == ["/v1/models"]


async def test_a_stream_that_breaks_after_it_began_is_not_retried(provider):
    provider.server.enqueue(cut_stream(after_frames=4))
    received = []

    with pytest.raises(ProviderError):
        async for item in provider.adapter().stream(ask()):
            received.append(item)

    assert received and all(isinstance(item, Delta) for item in received)
    assert len(provider.server.requests) == 1


async def test_a_private_base_url_is_refused_at_call_time(provider):
    with pytest.raises(UnsafeProviderUrl):
        await provider.adapter(allow_private_urls=False).complete(ask())

    assert provider.server.requests == []


async def test_errors_are_llm_errors_with_the_products_codes(provider):
    provider.server.enqueue(status(400, message="bad request"))

    with pytest.raises(LLMError) as raised:
        await provider.adapter().complete(ask())

    assert (raised.value.code, raised.value.status) == ("provider_error", 502)


async def test_responses_are_asked_for_uncompressed_so_the_size_limit_bounds_memory(provider):
    await provider.adapter().complete(ask())

    (request,) = provider.server.requests
    assert request.headers["Accept-Encoding"] == "identity"


async def test_a_provider_error_that_quotes_the_key_does_not_repeat_it(provider):
    provider.server.reset(api_key=SECRET_KEY)
    provider.server.enqueue(status(503, message=f"overloaded while serving {SECRET_KEY}"))

    with pytest.raises(ProviderError, match="overloaded") as raised:
        await provider.adapter(api_key=SECRET_KEY).complete(ask(max_retries=0))

    assert_key_hidden(raised.value, SECRET_KEY)
