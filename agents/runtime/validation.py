"""Checking config documents (plain Python, no Django): the error every config check raises, its
`{path, message}` items, paths, "did you mean" suggestions and the value checks themselves.

A check is `check(value, path, errors)`: it returns the value normalized, or appends an error at
`path` and returns None. `mapping({name: Key(check, default)})` checks a document's keys, so a
schema is a nest of these. The agent config schema (agents.config_schema), the orchestration
patterns' options (orchestrations.patterns.options) and the official template files
(templates.official) are all built from them, so each kind of mistake reads the same everywhere."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.runtime.schema import json_kind

Errors = list[dict[str, str]]
Path = Sequence[str | int]
Check = Callable[[Any, str, Errors], Any]


class ConfigError(Exception):
    """A config document that failed to load or validate; every error names its path ("" for the
    document itself)."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]):
        self.errors = [{"path": str(e["path"]), "message": str(e["message"])} for e in errors]
        super().__init__("; ".join(self.lines()))

    def lines(self, prefix: str = "") -> list[str]:
        """Each error as `path: message`, the document itself named `(document)`."""
        return error_lines(self.errors, prefix)


def error_lines(errors: Errors, prefix: str = "") -> list[str]:
    return [f"{prefix}{e['path'] or '(document)'}: {e['message']}" for e in errors]


def error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def fail(errors: Errors, path: str, message: str) -> None:
    """Records an error; returns None, the result of a check that failed."""
    errors.append(error(path, message))


def join(prefix: str, key: str) -> str:
    """`join("routing", "mode")` -> `routing.mode`; at the root the key alone."""
    return f"{prefix}.{key}" if prefix else key


def format_path(path: Path) -> str:
    """`("signature", "outputs", 1, "enum_values")` -> `signature.outputs[1].enum_values`."""
    text = ""
    for segment in path:
        text = f"{text}[{segment}]" if isinstance(segment, int) else join(text, str(segment))
    return text


def did_you_mean(word: str, options: Sequence[str]) -> str | None:
    """The "did you mean 'x'?" naming the option closest to a mistyped `word`; None if none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def suggestion(word: str, options: Sequence[str]) -> str:
    """The close option to a mistyped `word`, else the list of every option."""
    return did_you_mean(word, options) or f"expected one of: {', '.join(options)}"


def check_known_keys(data: Mapping[Any, Any], allowed: Sequence[str], prefix: str, errors: Errors) -> None:
    """One error per key of `data` not in `allowed`, at its path, suggesting the close key."""
    for key in data:
        if key not in allowed:
            fail(errors, join(prefix, str(key)), f"unknown key {str(key)!r}; {suggestion(str(key), allowed)}")


# --- value checks --------------------------------------------------------------------------------

REQUIRED = object()  # the key must be present
OMIT = object()  # optional, and left out of the normalized document when absent


@dataclass(frozen=True)
class Key:
    check: Check
    # REQUIRED, OMIT, None (optional, null when absent) or a default that `check` normalizes.
    default: Any = REQUIRED


def mapping(keys: Mapping[str, Key], *, null_is_default: bool = False) -> Check:
    """A mapping with these keys and no others, normalized with every default filled in. A null is
    accepted where the default is null; `null_is_default` reads every null as a key not given."""

    def check(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            return fail(errors, path, f"must be a mapping, got {json_kind(value)}")
        check_known_keys(value, list(keys), path, errors)
        normalized: dict[str, Any] = {}
        for name, key in keys.items():
            key_path = join(path, name)
            if name in value and not (value[name] is None and (key.default is None or null_is_default)):
                normalized[name] = key.check(value[name], key_path, errors)
            elif key.default is None:
                normalized[name] = None
            elif key.default is REQUIRED:
                fail(errors, key_path, "is required")
            elif key.default is not OMIT:
                normalized[name] = key.check(key.default, key_path, errors)
        return normalized

    return check


def string(*, max_length: int | None = None, non_empty: bool = False) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if not isinstance(value, str):
            return fail(errors, path, f"must be a string, got {json_kind(value)}")
        if non_empty and not value.strip():
            return fail(errors, path, "must not be empty")
        if max_length is not None and len(value) > max_length:
            return fail(errors, path, f"must be at most {max_length} characters, got {len(value)}")
        return value

    return check


def choice(options: Sequence[str]) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        if isinstance(value, str):
            return fail(errors, path, f"unknown value {value!r}; {suggestion(value, options)}")
        return fail(errors, path, f"must be one of {', '.join(options)}, got {json_kind(value)}")

    return check


def pattern(regex: re.Pattern[str], description: str) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        return fail(errors, path, f"must be {description}, got {value!r}")

    return check


def number(
    low: float, high: float = math.inf, *, low_exclusive: bool = False, integer: bool = False
) -> Check:
    """A finite number (an integer if `integer`) from `low` (or above it) up to `high`."""
    bounds = f"greater than {low}" if low_exclusive else f"at least {low}"
    if high != math.inf:
        bounds += f" and at most {high}"
    kind, types = ("an integer", int) if integer else ("a number", int | float)

    def check(value: Any, path: str, errors: Errors) -> float | int | None:
        # bool is an int subclass, but `rounds: true` is a mistake, not 1
        if not isinstance(value, types) or isinstance(value, bool):
            return fail(errors, path, f"must be {kind}, got {json_kind(value)}")
        above_low = value > low if low_exclusive else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            return fail(errors, path, f"must be {bounds}, got {value}")
        return value

    return check


def integer(low: int, high: float = math.inf) -> Check:
    return number(low, high, integer=True)


def boolean(value: Any, path: str, errors: Errors) -> bool | None:
    if not isinstance(value, bool):
        return fail(errors, path, f"must be true or false, got {json_kind(value)}")
    return value


def list_of(item: Check, *, max_items: int, min_items: int = 0) -> Check:
    def check(value: Any, path: str, errors: Errors) -> list[Any] | None:
        if not isinstance(value, list):
            return fail(errors, path, f"must be a list, got {json_kind(value)}")
        if not min_items <= len(value) <= max_items:
            message = f"must have between {min_items} and {max_items} items, got {len(value)}"
            return fail(errors, path, message)
        return [item(element, f"{path}[{index}]", errors) for index, element in enumerate(value)]

    return check
