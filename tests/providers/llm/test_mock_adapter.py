"""The mock provider: scripted answers by turn, answers derived from the input, errors, latency."""

from __future__ import annotations

import json
import time

import pytest

from providers.llm.registry import create_adapter
from providers.llm.types import (
    Completion,
    CompletionRequest,
    Delta,
    InvalidApiKey,
    Message,
    ProviderError,
    ProviderRateLimited,
    ProviderSettings,
    ProviderTimeout,
)

MOCK = create_adapter(ProviderSettings(kind="mock"))
TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "priority": {"type": "string", "enum": ["urgent", "low"]},
        "score": {"type": "integer", "minimum": 3},
        "confidence": {"type": "number"},
        "escalate": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "note": {"type": ["string", "null"]},
    },
    "required": ["reply", "priority", "score", "confidence", "escalate", "tags", "customer", "note"],
}


def ask(text: str = "My order never arrived", *, turn: int = 0, **options) -> CompletionRequest:
    provider_options = options.pop("provider_options", {})
    return CompletionRequest(
        messages=(Message(role="system", content="Be kind."), Message(role="user", content=text)),
        model="mock-1",
        turn=turn,
        provider_options=provider_options,
        **options,
    )


def scripted(*responses, turn: int = 0, **options) -> CompletionRequest:
    return ask(turn=turn, provider_options={"responses": list(responses)}, **options)


async def test_each_turn_gets_its_scripted_response():
    script = ({"response": "first"}, {"response": "second"})

    answers = [(await MOCK.complete(scripted(*script, turn=turn))).text for turn in range(2)]

    assert answers == ["first", "second"]


async def test_past_the_end_of_the_script_answers_are_derived_from_the_input():
    completion = await MOCK.complete(scripted({"response": "only one"}, turn=1))

    assert completion.text == "Mock answer to: My order never arrived"


async def test_a_scripted_mapping_is_the_json_text_and_the_parsed_answer():
    completion = await MOCK.complete(scripted({"response": {"reply": "Sorry!", "priority": "urgent"}}))

    assert json.loads(completion.text) == {"reply": "Sorry!", "priority": "urgent"}
    assert completion.parsed == {"reply": "Sorry!", "priority": "urgent"}


async def test_a_scripted_text_is_parsed_only_when_json_was_asked_for_and_it_parses():
    not_json = await MOCK.complete(scripted({"response": "plain words"}, json_schema=TRIAGE_SCHEMA))
    json_text = await MOCK.complete(scripted({"response": '{"reply": "ok"}'}, json_schema=TRIAGE_SCHEMA))

    assert not_json.parsed is None
    assert json_text.parsed == {"reply": "ok"}


async def test_scripted_tool_calls_become_tool_calls():
    completion = await MOCK.complete(
        scripted({"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]})
    )

    (call,) = completion.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_0_0", "lookup_order", {"order_id": "A-1"})
    assert completion.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("rate_limited", ProviderRateLimited),
        ("timeout", ProviderTimeout),
        ("provider_error", ProviderError),
        ("invalid_api_key", InvalidApiKey),
    ],
)
async def test_a_scripted_error_raises_the_matching_llm_error(code, error_class):
    with pytest.raises(error_class, match="scripted outage") as raised:
        await MOCK.complete(scripted({"error": code, "message": "scripted outage"}))

    assert raised.value.code == error_class.code


@pytest.mark.parametrize("item", [{"text": "wrong key"}, "just text", {"tool_calls": [{"arguments": {}}]}])
async def test_a_malformed_script_item_is_a_provider_error_naming_the_turn(item):
    with pytest.raises(ProviderError, match="item 0"):
        await MOCK.complete(scripted(item))


async def test_a_derived_structured_answer_conforms_to_the_schema():
    completion = await MOCK.complete(ask("Refund please", json_schema=TRIAGE_SCHEMA))

    assert completion.parsed == {
        "reply": "reply: Refund please",
        "priority": "urgent",
        "score": 3,
        "confidence": 1.0,
        "escalate": True,
        "tags": ["tags: Refund please"],
        "customer": {"name": "name: Refund please"},
        "note": "note: Refund please",
    }
    assert json.loads(completion.text) == completion.parsed


async def test_answers_are_deterministic():
    first = await MOCK.complete(ask(json_schema=TRIAGE_SCHEMA))
    second = await MOCK.complete(ask(json_schema=TRIAGE_SCHEMA))

    assert (first.text, first.usage) == (second.text, second.usage)


async def test_a_long_input_is_quoted_as_a_short_snippet():
    completion = await MOCK.complete(ask("word " * 100))

    assert completion.text.startswith("Mock answer to: word word")
    assert len(completion.text) < 100


async def test_tokens_are_counted_from_the_text_length():
    completion = await MOCK.complete(scripted({"response": "12345"}))

    # input: "Be kind." + "My order never arrived" = 30 characters
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (8, 2)
    assert completion.model == "mock-1"


async def test_latency_is_simulated():
    started = time.perf_counter()

    await MOCK.complete(ask(provider_options={"latency_ms": 150}))

    assert time.perf_counter() - started >= 0.15


async def test_latency_past_the_deadline_is_a_timeout():
    with pytest.raises(ProviderTimeout):
        await MOCK.complete(ask(provider_options={"latency_ms": 5000}, timeout_s=0.1))


async def test_streaming_yields_the_words_then_the_completion_over_the_latency():
    request = CompletionRequest(
        messages=(Message(role="user", content="count"),),
        model="mock-1",
        provider_options={"responses": [{"response": "one two three"}], "latency_ms": 150},
    )
    started = time.perf_counter()

    items = [item async for item in MOCK.stream(request)]

    assert [item.text for item in items[:-1] if isinstance(item, Delta)] == ["one ", "two ", "three"]
    assert isinstance(items[-1], Completion)
    assert items[-1].text == "one two three"
    assert time.perf_counter() - started >= 0.15


async def test_a_scripted_error_is_raised_by_the_stream_too():
    with pytest.raises(ProviderRateLimited):
        [item async for item in MOCK.stream(scripted({"error": "rate_limited"}))]


async def test_models_and_validation():
    assert await MOCK.list_models() == ["mock-1"]
    assert (await MOCK.validate()).valid
