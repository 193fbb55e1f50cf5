"""Pricing: longest-prefix model match, cached input, overrides, and the reservation upper bound."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.llm.pricing import find_price, max_cost, price, price_table
from providers.llm.registry import create_adapter
from providers.llm.types import CompletionRequest, Message, ProviderSettings, ToolSpec, Usage

MILLION_IN_MILLION_OUT = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "claude-opus-4",
    "claude-opus-4-1",
    "claude-sonnet-4",
    "claude-sonnet-4-5",
    "claude-3-5-haiku",
    "claude-haiku-4-5",
    "mock-1",
]


def test_the_table_prices_every_supported_model_in_decimal():
    table = price_table()

    assert set(REQUIRED_MODELS) <= table.keys()
    for model_price in table.values():
        assert isinstance(model_price.input, Decimal)
        assert 0 < model_price.cached_input <= model_price.input <= model_price.output


@pytest.mark.parametrize(
    ("model", "listed_as"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("Claude-3-5-Haiku-20241022", "claude-3-5-haiku"),
    ],
)
def test_dated_names_take_their_longest_listed_prefix(model, listed_as):
    assert find_price(model) == price_table()[listed_as]


@pytest.mark.parametrize("model", ["gpt-4omega", "o10", "llama3:8b", ""])
def test_a_prefix_must_end_at_a_name_boundary(model):
    assert find_price(model) is None


def test_a_call_is_priced_per_million_tokens():
    cost, known = price("gpt-4o", MILLION_IN_MILLION_OUT)

    assert (cost, known) == (Decimal("12.50"), True)


def test_cached_input_tokens_are_charged_at_the_cached_price():
    usage = Usage(input_tokens=1_000, output_tokens=0, cached_input_tokens=400)

    cost, _ = price("gpt-4o", usage)

    assert cost == (600 * Decimal("2.50") + 400 * Decimal("1.25")) / 1_000_000


def test_an_unknown_model_costs_nothing_and_says_so():
    assert price("my-finetune", MILLION_IN_MILLION_OUT) == (Decimal(0), False)


def test_an_override_replaces_the_tables_price_and_prices_unknown_models():
    overrides = {"gpt-4o": {"input": "1", "output": "2"}, "prod-deployment": {"input": 3, "output": 4}}

    assert price("gpt-4o-2024-08-06", MILLION_IN_MILLION_OUT, overrides) == (Decimal(3), True)
    assert price("prod-deployment", MILLION_IN_MILLION_OUT, overrides) == (Decimal(7), True)
    assert price("gpt-4o-mini", MILLION_IN_MILLION_OUT, overrides)[0] == Decimal("0.75")


def test_an_override_without_a_cached_price_charges_cached_tokens_as_input():
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000)

    assert price("custom", usage, {"custom": {"input": 2, "output": 8}}) == (Decimal(2), True)


def test_a_malformed_override_is_refused():
    with pytest.raises(ValueError, match="input and output"):
        price("gpt-4o", MILLION_IN_MILLION_OUT, {"gpt-4o": {"input": "cheap"}})


def test_max_cost_counts_max_tokens_and_a_default_when_unset():
    request = CompletionRequest(messages=(Message(role="user", content="hi"),), model="mock-1")

    unset = max_cost("mock-1", request)
    capped = max_cost("mock-1", CompletionRequest(messages=request.messages, model="mock-1", max_tokens=10))

    assert unset - capped == (4096 - 10) * Decimal("2.00") / 1_000_000


def test_max_cost_of_an_unknown_model_is_zero():
    request = CompletionRequest(messages=(Message(role="user", content="hi"),), model="x")

    assert max_cost("my-finetune", request) == Decimal(0)


@pytest.mark.parametrize("text", ["Short question?", "日本語の長い質問です。" * 50, "lorem ipsum " * 2000])
async def test_max_cost_bounds_the_real_cost_of_the_call(text):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "notes": {"type": "string"}}}
    request = CompletionRequest(
        messages=(Message(role="system", content="Answer briefly."), Message(role="user", content=text)),
        model="mock-1",
        max_tokens=200,
        json_schema=schema,
        tools=(ToolSpec(name="search", description="Search the web", parameters={"type": "object"}),),
    )

    completion = await create_adapter(ProviderSettings(kind="mock")).complete(request)
    cost, known = price("mock-1", completion.usage)

    assert known
    assert Decimal(0) < cost <= max_cost("mock-1", request)
