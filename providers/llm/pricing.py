"""What a model call costs: `providers/pricing.yaml` (USD per million tokens) plus per-config overrides.

A model matches its longest listed prefix that ends at a name boundary, so `gpt-4o-2024-08-06` is
priced as `gpt-4o` and `gpt-4o-mini` as itself. Cached input tokens (a subset of the input tokens)
are charged at the cached price. All money is `Decimal`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from providers.llm.types import CompletionRequest, Usage

PRICING_FILE = Path(__file__).resolve().parent.parent / "pricing.yaml"
MILLION = Decimal(1_000_000)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# The input estimate counts UTF-8 bytes: the providers' byte-level BPE tokenizers never make more
# tokens than bytes. On top: chat markup per message, and tool-use system prompts per request.
PER_MESSAGE_OVERHEAD_TOKENS = 8
PER_REQUEST_OVERHEAD_TOKENS = 512
NAME_BOUNDARIES = ("-", ":", "@")

PriceOverrides = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal


def price(model: str, usage: Usage, overrides: PriceOverrides | None = None) -> tuple[Decimal, bool]:
    """The cost of `usage` on `model`, and whether the model has a price (unknown models cost 0)."""
    model_price = find_price(model, overrides)
    if model_price is None:
        return Decimal(0), False
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cost = (
        (usage.input_tokens - cached) * model_price.input
        + cached * model_price.cached_input
        + usage.output_tokens * model_price.output
    )
    return cost / MILLION, True


def max_cost(model: str, request: CompletionRequest, overrides: PriceOverrides | None = None) -> Decimal:
    """The most `request` can cost on `model`: what the gateway reserves against budgets before calling."""
    model_price = find_price(model, overrides)
    if model_price is None:
        return Decimal(0)
    output_tokens = request.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    cost = max_input_tokens(request) * model_price.input + output_tokens * model_price.output
    return cost / MILLION


def max_input_tokens(request: CompletionRequest) -> int:
    """A generous upper bound of the prompt tokens of `request`: messages, schema and tools."""
    parts = [message.content for message in request.messages]
    parts += [json.dumps(dict(call.arguments)) for message in request.messages for call in message.tool_calls]
    parts += [json.dumps(dict(request.json_schema or {}))]
    parts += [tool.name + tool.description + json.dumps(dict(tool.parameters)) for tool in request.tools]
    prompt_bytes = sum(len(part.encode("utf-8")) for part in parts)
    return prompt_bytes + PER_MESSAGE_OVERHEAD_TOKENS * len(request.messages) + PER_REQUEST_OVERHEAD_TOKENS


def find_price(model: str, overrides: PriceOverrides | None = None) -> ModelPrice | None:
    """The price of `model`, or None when unknown; an override replaces the table's entry of its name."""
    overridden = {name.lower(): _model_price(entry) for name, entry in (overrides or {}).items()}
    prices = {**price_table(), **overridden}
    name = model.lower()
    matches = [listed for listed in prices if name == listed or _is_prefix(listed, name)]
    return prices[max(matches, key=len)] if matches else None


@functools.cache
def price_table() -> dict[str, ModelPrice]:
    """The prices of `providers/pricing.yaml`, by lower-case model name."""
    with PRICING_FILE.open(encoding="utf-8") as file:
        document = yaml.safe_load(file)
    return {name.lower(): _model_price(entry) for name, entry in document["models"].items()}


def _is_prefix(listed: str, name: str) -> bool:
    return name.startswith(listed) and name[len(listed)] in NAME_BOUNDARIES


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
