"""What a model call costs, in USD per million tokens. Whoever names a price first wins:

1. the provider config's `pricing_overrides`,
2. `providers/pricing.yaml` (local additions and corrections, e.g. the mock provider's model),
3. genai-prices, a maintained data set of the major providers' models, from the data bundled
   with the installed package only: its auto-update (`UpdatePrices`) is never started, so pricing
   never fetches anything.

An override or a pricing.yaml entry names a model exactly; a dated snapshot of it
(`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) or its `-latest` alias takes its price too,
but no other longer name does: `o1-pro` is not priced as `o1`. genai-prices matches names by
its own per-model rules. A model none of them prices has no price (`find_price` returns None).
Cached input tokens (a subset of the input tokens) are charged at the cached price. All money is
`Decimal`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from genai_prices import types as catalog
from genai_prices.data_snapshot import DataSnapshot

from providers.llm.types import CompletionRequest, LLMError, Usage

PRICING_FILE = Path(__file__).resolve().parent.parent / "pricing.yaml"
MILLION = Decimal(1_000_000)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# The input estimate counts UTF-8 bytes: the providers' byte-level BPE tokenizers never make more
# tokens than bytes. On top: chat markup per message, and tool-use system prompts per request.
PER_MESSAGE_OVERHEAD_TOKENS = 8
PER_REQUEST_OVERHEAD_TOKENS = 512
# A suffix that names a snapshot (or the newest one) of the same model, at the same price.
SNAPSHOT_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
# Our provider kinds with a price list of their own in genai-prices. The others (Ollama, any
# OpenAI-compatible server, the mock) are priced like the provider genai-prices finds by model name.
CATALOG_PROVIDERS = {"openai": "openai", "azure_openai": "azure", "anthropic": "anthropic"}
CATALOG_CACHE_SIZE = 4096  # model names come from configs: bounded, so a cache cannot grow without end

PriceOverrides = Mapping[str, Mapping[str, Any]]


class ModelNotPriced(LLMError):
    """A call a budget limits, on a model without a price: the budget could not count its cost."""

    code = "model_not_priced"
    status = 402


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. `long_context`: the rates of prompts of more than that many input
    tokens (ascending), for providers that charge every token of a long prompt more."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    long_context: tuple[tuple[int, ModelPrice], ...] = ()

    def cost(self, usage: Usage) -> Decimal:
        """What `usage` costs."""
        rates = self._rates_for(usage.input_tokens)
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cost = (
            (usage.input_tokens - cached) * rates.input
            + cached * rates.cached_input
            + usage.output_tokens * rates.output
        )
        return cost / MILLION

    def max_cost(self, request: CompletionRequest) -> Decimal:
        """The most `request` can cost: what the gateway reserves against budgets before calling.
        Every rate a prompt up to the input bound could be charged counts at its highest."""
        input_tokens = max_input_tokens(request)
        output_tokens = request.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        bands = [self, *(rates for above, rates in self.long_context if input_tokens > above)]
        cost = input_tokens * max(band.input for band in bands) + output_tokens * max(
            band.output for band in bands
        )
        return cost / MILLION

    def _rates_for(self, input_tokens: int) -> ModelPrice:
        rates = self
        for above, band in self.long_context:
            if input_tokens > above:
                rates = band
        return rates


def find_price(
    model: str, overrides: PriceOverrides | None = None, *, provider_kind: str | None = None
) -> ModelPrice | None:
    """The price of `model` on a provider of `provider_kind`, or None when nobody prices it.
    Raises ValueError for a malformed override of that model."""
    name = model.lower()
    snapshot_of = SNAPSHOT_SUFFIX.sub("", name)
    overridden = {listed.lower(): entry for listed, entry in (overrides or {}).items()}
    for candidate in dict.fromkeys((name, snapshot_of)):
        if candidate in overridden:
            return _model_price(overridden[candidate])
        if candidate in price_table():
            return price_table()[candidate]
    return _catalog_price(CATALOG_PROVIDERS.get(provider_kind or ""), name)


def max_input_tokens(request: CompletionRequest) -> int:
    """A generous upper bound of the prompt tokens of `request`: messages, schema and tools."""
    parts = [message.content for message in request.messages]
    parts += [json.dumps(dict(call.arguments)) for message in request.messages for call in message.tool_calls]
    parts += [json.dumps(dict(request.json_schema or {}))]
    parts += [tool.name + tool.description + json.dumps(dict(tool.parameters)) for tool in request.tools]
    prompt_bytes = sum(len(part.encode("utf-8")) for part in parts)
    return prompt_bytes + PER_MESSAGE_OVERHEAD_TOKENS * len(request.messages) + PER_REQUEST_OVERHEAD_TOKENS


@functools.cache
def price_table() -> dict[str, ModelPrice]:
    """The prices of `providers/pricing.yaml`, by lower-case model name."""
    with PRICING_FILE.open(encoding="utf-8") as file:
        document = yaml.safe_load(file)
    return {name.lower(): _model_price(entry) for name, entry in (document["models"] or {}).items()}


def _model_price(entry: Mapping[str, Any]) -> ModelPrice:
    """Prices from a mapping of `input`, `output` and optional `cached_input` (defaults to `input`)."""
    try:
        input_price = Decimal(str(entry["input"]))
        return ModelPrice(
            input=input_price,
            cached_input=Decimal(str(entry.get("cached_input", input_price))),
            output=Decimal(str(entry["output"])),
        )
    except (KeyError, TypeError, ArithmeticError) as error:
        raise ValueError(f"a model price needs numeric input and output prices, got {entry!r}") from error


# genai-prices -----------------------------------------------------------------------------------

# A model's prices over time in genai-prices: (when it applies, our price), the last one that
# applies wins, else the first (genai-prices' rule). None: the model has no token price then.
_Schedule = tuple[tuple[Any, ModelPrice | None], ...]


def _catalog_price(provider_id: str | None, model: str) -> ModelPrice | None:
    """genai-prices' price of `model` now (prices change on given dates, a few by time of day)."""
    schedule = _catalog_schedule(provider_id, model)
    if not schedule:
        return None
    now = dt.datetime.now(dt.UTC)
    applying = (price for when, price in reversed(schedule) if when is None or when.active(now))
    return next(applying, schedule[0][1])


@functools.lru_cache(maxsize=CATALOG_CACHE_SIZE)
def _catalog_schedule(provider_id: str | None, model: str) -> _Schedule:
    """Looked up once per (provider, model): the data set's match rules are slow to run per call."""
    try:
        _, info = _catalog().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return ()
    if isinstance(info.prices, catalog.ModelPrice):
        return ((None, _from_catalog(info.prices)),)
    return tuple((conditional.constraint, _from_catalog(conditional.prices)) for conditional in info.prices)


@functools.cache
def _catalog() -> DataSnapshot:
    """The data bundled with genai-prices, loaded on first use (it takes a fifth of a second)."""
    from genai_prices.data import providers

    return DataSnapshot(providers=providers, from_auto_update=False)


def _from_catalog(prices: catalog.ModelPrice) -> ModelPrice | None:
    """Our price from genai-prices' token prices (None without an input and an output price).
    Units our usage does not report (images, audio, searches, cache writes) are left out."""
    rates = {"input": prices.input_mtok, "cached_input": prices.cache_read_mtok, "output": prices.output_mtok}
    if rates["input"] is None or rates["output"] is None:
        return None
    if rates["cached_input"] is None:  # no cache discount: cached tokens are input tokens
        rates["cached_input"] = rates["input"]
    tiered = [rate for rate in rates.values() if isinstance(rate, catalog.TieredPrices)]
    thresholds = sorted({tier.start for rate in tiered for tier in rate.tiers})

    def at(input_tokens: int) -> ModelPrice:
        return ModelPrice(**{name: _tiered_rate(rate, input_tokens) for name, rate in rates.items()})

    return dataclasses.replace(at(0), long_context=tuple((above, at(above + 1)) for above in thresholds))


def _tiered_rate(rate: Decimal | catalog.TieredPrices, input_tokens: int) -> Decimal:
    """The rate of a prompt of `input_tokens`: a tier's rate applies to all tokens above its start."""
    if not isinstance(rate, catalog.TieredPrices):
        return rate
    return next((tier.price for tier in reversed(rate.tiers) if input_tokens > tier.start), rate.base)
