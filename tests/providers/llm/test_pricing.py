"""Pricing: genai-prices' bundled data under pricing.yaml and overrides, exact names with their
dated snapshots, cached input, long-context rates, and the reservation upper bound."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import data_snapshot

from providers.llm import pricing
from providers.llm.pricing import ModelPrice, find_price, price_table
from providers.llm.registry import create_adapter
from providers.llm.types import CompletionRequest, Message, ProviderSettings, ToolSpec, Usage

MILLION_IN_MILLION_OUT = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
# The providers' list prices (input, cached input, output per million tokens) of the models the
# product supports, as pricing.yaml had them by hand: genai-prices must price every one the same.
LIST_PRICES = [
    ("openai", "gpt-4o", "2.50", "1.25", "10.00"),
    ("openai", "gpt-4o-mini", "0.15", "0.075", "0.60"),
    ("openai", "gpt-4.1", "2.00", "0.50", "8.00"),
    ("openai", "gpt-4.1-mini", "0.40", "0.10", "1.60"),
    ("openai", "gpt-4.1-nano", "0.10", "0.025", "0.40"),
    ("openai", "o1", "15.00", "7.50", "60.00"),
    ("openai", "o1-mini", "1.10", "0.55", "4.40"),
    ("openai", "o3", "2.00", "0.50", "8.00"),
    ("openai", "o3-mini", "1.10", "0.55", "4.40"),
    ("openai", "o4-mini", "1.10", "0.275", "4.40"),
    ("anthropic", "claude-opus-4", "15.00", "1.50", "75.00"),
    ("anthropic", "claude-opus-4-1", "15.00", "1.50", "75.00"),
    ("anthropic", "claude-opus-4-5", "5.00", "0.50", "25.00"),
    ("anthropic", "claude-sonnet-4", "3.00", "0.30", "15.00"),
    ("anthropic", "claude-sonnet-4-5", "3.00", "0.30", "15.00"),
    ("anthropic", "claude-3-5-haiku", "0.80", "0.08", "4.00"),
    ("anthropic", "claude-haiku-4-5", "1.00", "0.10", "5.00"),
    ("mock", "mock-1", "1.00", "0.50", "2.00"),
]


def hello(model="mock-1", **fields) -> CompletionRequest:
    return CompletionRequest(messages=(Message(role="user", content="hi"),), model=model, **fields)


@pytest.mark.parametrize(("kind", "model", "input_price", "cached", "output"), LIST_PRICES)
def test_every_supported_model_has_its_list_price(kind, model, input_price, cached, output):
    found = find_price(model, provider_kind=kind)

    assert (found.input, found.cached_input, found.output) == tuple(
        map(Decimal, (input_price, cached, output))
    )
    assert find_price(model) == found  # without a provider kind, genai-prices finds it by name


def test_the_mock_model_is_priced_by_pricing_yaml():
    assert find_price("mock-1", provider_kind="mock") == price_table()["mock-1"]


@pytest.mark.parametrize(
    ("kind", "model", "listed_as"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("openai", "o3-mini-2025-01-31", "o3-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "Claude-3-5-Haiku-20241022", "claude-3-5-haiku"),
        ("mock", "mock-1-2025-01-01", "mock-1"),
        ("mock", "MOCK-1-latest", "mock-1"),
    ],
)
def test_dated_snapshots_take_their_models_price(kind, model, listed_as):
    assert find_price(model, provider_kind=kind) == find_price(listed_as, provider_kind=kind)


@pytest.mark.parametrize(
    ("model", "cheaper"),
    [("o1-pro", "o1"), ("o3-pro", "o3"), ("o1-pro-2025-03-19", "o1"), ("gpt-5-pro", "gpt-5")],
)
def test_pro_variants_are_priced_as_themselves_not_as_a_cheaper_prefix(model, cheaper):
    pro, base = find_price(model, provider_kind="openai"), find_price(cheaper, provider_kind="openai")

    assert pro.input > base.input and pro.output > base.output


def test_a_listed_name_prices_its_snapshots_only_never_a_longer_model():
    overrides = {"o1": {"input": 1, "output": 1}, "mock-1": {"input": 1, "output": 1}}

    assert find_price("o1-2024-12-17", overrides, provider_kind="openai") == ModelPrice(1, 1, 1)
    assert find_price("o1-pro", overrides, provider_kind="openai").input > 100  # genai-prices' o1-pro
    assert find_price("mock-1-turbo", overrides, provider_kind="mock") is None


@pytest.mark.parametrize("model", ["gpt-4omega", "o10", "llama3:8b", "my-finetune", ""])
@pytest.mark.parametrize("kind", ["openai", "openai_compatible", "ollama", "mock"])
def test_a_model_nobody_prices_has_no_price(model, kind):
    assert find_price(model, provider_kind=kind) is None


def test_a_call_is_priced_per_million_tokens():
    assert find_price("gpt-4o", provider_kind="openai").cost(MILLION_IN_MILLION_OUT) == Decimal("12.50")


def test_cached_input_tokens_are_charged_at_the_cached_price():
    usage = Usage(input_tokens=1_000, output_tokens=0, cached_input_tokens=400)

    cost = find_price("gpt-4o", provider_kind="openai").cost(usage)

    assert cost == (600 * Decimal("2.50") + 400 * Decimal("1.25")) / 1_000_000


def test_a_model_without_a_cache_price_charges_cached_tokens_as_input():
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000)
    o1_pro = find_price("o1-pro", provider_kind="openai")

    assert o1_pro.cost(usage) == o1_pro.input == o1_pro.cached_input


def test_a_long_prompt_is_charged_the_long_context_rate_on_every_token():
    sonnet = find_price("claude-sonnet-4-5", provider_kind="anthropic")

    short = sonnet.cost(Usage(input_tokens=200_000, output_tokens=1_000))
    long = sonnet.cost(Usage(input_tokens=200_001, output_tokens=1_000))

    assert short == (200_000 * Decimal(3) + 1_000 * Decimal(15)) / 1_000_000
    assert long == (200_001 * Decimal(6) + 1_000 * Decimal("22.5")) / 1_000_000


def test_the_reservation_of_a_long_prompt_counts_the_long_context_rate():
    sonnet = find_price("claude-sonnet-4-5", provider_kind="anthropic")
    request = CompletionRequest(
        messages=(Message(role="user", content="x" * 300_000),), model="m", max_tokens=10
    )

    reserved = sonnet.max_cost(request)

    assert reserved == (pricing.max_input_tokens(request) * Decimal(6) + 10 * Decimal("22.5")) / 1_000_000


def test_an_override_wins_over_genai_prices_and_prices_unknown_models():
    overrides = {"GPT-4o": {"input": "1", "output": "2"}, "prod-deployment": {"input": 3, "output": 4}}

    assert (
        find_price("gpt-4o-2024-08-06", overrides, provider_kind="openai").cost(MILLION_IN_MILLION_OUT) == 3
    )
    assert (
        find_price("prod-deployment", overrides, provider_kind="azure_openai").cost(MILLION_IN_MILLION_OUT)
        == 7
    )
    assert find_price("gpt-4o-mini", overrides, provider_kind="openai").cost(
        MILLION_IN_MILLION_OUT
    ) == Decimal("0.75")


def test_a_pricing_yaml_entry_wins_over_genai_prices_and_an_override_over_both(tmp_path, monkeypatch):
    table = tmp_path / "pricing.yaml"
    table.write_text("models:\n  gpt-4o: {input: 7, output: 9}\n  house-model: {input: 1, output: 1}\n")
    monkeypatch.setattr(pricing, "PRICING_FILE", table)
    price_table.cache_clear()
    try:
        assert find_price("gpt-4o", provider_kind="openai") == ModelPrice(Decimal(7), Decimal(7), Decimal(9))
        assert find_price("house-model", provider_kind="openai_compatible") == ModelPrice(1, 1, 1)
        overridden = find_price("gpt-4o", {"gpt-4o": {"input": 2, "output": 3}}, provider_kind="openai")
        assert overridden == ModelPrice(2, 2, 3)
    finally:
        price_table.cache_clear()


def test_an_override_without_a_cached_price_charges_cached_tokens_as_input():
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000)

    assert find_price("custom", {"custom": {"input": 2, "output": 8}}).cost(usage) == Decimal(2)


def test_a_malformed_override_is_refused():
    with pytest.raises(ValueError, match="input and output"):
        find_price("gpt-4o", {"gpt-4o": {"input": "cheap"}})


def test_only_the_bundled_data_is_used_never_an_updated_snapshot():
    """genai-prices' auto-update swaps in a fetched snapshot; our prices must not follow it."""
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
    pricing._catalog_schedule.cache_clear()
    try:
        assert find_price("gpt-4o", provider_kind="openai").input == Decimal("2.50")
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_a_lookup_runs_genai_prices_once_per_provider_and_model():
    pricing._catalog_schedule.cache_clear()

    for _ in range(3):
        find_price("gpt-4.1-mini-2025-04-14", provider_kind="openai")
        find_price("not-a-model", provider_kind="openai")

    assert pricing._catalog_schedule.cache_info().misses == 2


def test_max_cost_counts_max_tokens_and_a_default_when_unset():
    mock = find_price("mock-1", provider_kind="mock")

    assert (
        mock.max_cost(hello()) - mock.max_cost(hello(max_tokens=10))
        == (4096 - 10) * Decimal("2.00") / 1_000_000
    )


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
    mock = find_price("mock-1", provider_kind="mock")

    completion = await create_adapter(ProviderSettings(kind="mock")).complete(request)

    assert Decimal(0) < mock.cost(completion.usage) <= mock.max_cost(request)
