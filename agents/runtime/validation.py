"""Checking config documents (plain Python, no Django): the error every config check raises, its
`{path, message}` items, paths and "did you mean" suggestions. The agent config schema
(agents.config_schema), the orchestration patterns' options (orchestrations.patterns.options) and
the official template files (templates.official) all report their problems through this module."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

Errors = list[dict[str, str]]
Path = Sequence[str | int]


class ConfigError(Exception):
    """A config document that failed to load or validate; every error names its path."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]):
        self.errors = [{"path": str(e["path"]), "message": str(e["message"])} for e in errors]
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in self.errors))


def error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


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


def check_known_keys(
    data: Mapping[Any, Any], allowed: Sequence[str], prefix: str, errors: Errors, *, sorted_keys: bool = False
) -> None:
    """One error per key of `data` not in `allowed`, at its path. The message suggests the close
    key; `sorted_keys` selects the patterns' form, which always lists every allowed key, sorted."""
    for key in data:
        if key not in allowed:
            errors.append(error(join(prefix, str(key)), _unknown_key_message(str(key), allowed, sorted_keys)))


def _unknown_key_message(key: str, allowed: Sequence[str], sorted_keys: bool) -> str:
    if sorted_keys:
        hint = did_you_mean(key, allowed)
        listed = ", ".join(sorted(allowed))
        return f"unknown key {key!r}{f' ({hint})' if hint else ''}; allowed keys: {listed}"
    return f"unknown key {key!r}; {suggestion(key, allowed)}"
