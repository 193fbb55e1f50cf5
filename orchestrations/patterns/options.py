"""Config options of the orchestration patterns: each option checks one value and knows its default.

`parse_options` checks a whole mapping against a set of options, collecting every error with its
path (`routing.mode`, `mapping[1].draft`) instead of stopping at the first (the errors, paths and
suggestions are agents.runtime.validation's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.runtime.validation import Errors, check_known_keys, error, join

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Option(Protocol):
    default: Any

    def parse(self, value: Any, path: str, errors: Errors) -> Any: ...


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    default: str

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, str) and value in self.values:
            return value
        errors.append(error(path, f"must be one of: {', '.join(self.values)} (got {value!r})"))
        return self.default


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    default: float | None = None
    integer: bool = False
    low_inclusive: bool = True

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        kind = "an integer" if self.integer else "a number"
        types = int if self.integer else (int, float)
        # bool is an int subclass, but `rounds: true` is a mistake, not 1
        if isinstance(value, bool) or not isinstance(value, types):
            errors.append(error(path, f"must be {kind} (got {value!r})"))
            return self.default
        above_low = value >= self.low if self.low_inclusive else value > self.low
        if not (above_low and value <= self.high):
            lower = f"from {self.low:g}" if self.low_inclusive else f"greater than {self.low:g}"
            errors.append(error(path, f"must be {kind} {lower} up to {self.high:g} (got {value!r})"))
        return value


@dataclass(frozen=True)
class Text:
    default: str | None = None
    max_length: int = 200
    field_name: bool = False  # names an output field of the agents

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, str) or not value.strip():
            errors.append(error(path, f"must be a non-empty string (got {value!r})"))
        elif len(value) > self.max_length:
            errors.append(error(path, f"must be at most {self.max_length} characters"))
        elif self.field_name and not FIELD_NAME.fullmatch(value):
            errors.append(error(path, f"must be a field name (letters, digits, _), got {value!r}"))
        return value


@dataclass(frozen=True)
class Section:
    options: Mapping[str, Option]

    @property
    def default(self) -> dict[str, Any]:
        return {key: option.default for key, option in self.options.items()}

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, Mapping):
            errors.append(error(path, f"must be a mapping with keys: {', '.join(self.options)}"))
            return self.default
        return parse_options(self.options, value, path, errors)


def parse_options(
    options: Mapping[str, Option], data: Mapping[str, Any], prefix: str, errors: Errors
) -> dict[str, Any]:
    """Check `data` against `options`: every value checked, unknown keys rejected, defaults filled."""
    check_known_keys(data, list(options), prefix, errors, sorted_keys=True)
    return {
        key: option.default if data.get(key) is None else option.parse(data[key], join(prefix, key), errors)
        for key, option in options.items()
    }


COMMON_OPTIONS: dict[str, Option] = {
    "timeout_s": Number(0, 3600, default=300, low_inclusive=False),
    "on_agent_error": Choice(("fail", "continue"), default="fail"),
    "max_total_cost_usd": Number(0, 1_000_000, low_inclusive=False),
}
