"""Config YAML, loaded strictly (plain Python, no Django): a document that must be a mapping of
plain JSON data, with no anchors, aliases, tags, deep nesting or odd keys (agents, orchestrations
and templates all read their YAML through `load_yaml`)."""

from __future__ import annotations

from typing import Any

import yaml

from agents.runtime.schema import json_kind
from agents.runtime.validation import ConfigError, error, format_path

_STR_TAG = "tag:yaml.org,2002:str"
_DROPPED_RESOLVERS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:merge")


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects anchors, aliases, tags, deep nesting and non-string or duplicate
    keys as each event arrives, before any node is built, so nothing is ever expanded."""

    # Timestamps stay strings so a loaded document is plain JSON data; without aliases a merge key
    # (`<<`) could only hide keys from the schema.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, max_depth: int):
        super().__init__(text)
        self._max_depth = max_depth
        self._path: list[str | int] = []
        self._depth = 0
        self._keys_seen: dict[int, set[str]] = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        is_key = index is None and isinstance(parent, yaml.MappingNode)
        has_segment = parent is not None and not is_key  # the root and mapping keys add no segment
        if has_segment:
            self._path.append(index if isinstance(index, int) else index.value)
        self._reject_event(event)
        is_collection = isinstance(event, yaml.CollectionStartEvent)
        if is_collection and self._depth >= self._max_depth:
            self._reject(f"nesting is deeper than {self._max_depth} levels")
        self._depth += is_collection
        node = super().compose_node(parent, index)
        self._depth -= is_collection
        if is_key:
            self._check_key(parent, node)
        if has_segment:
            self._path.pop()
        return node

    def _reject_event(self, event) -> None:
        where = f"line {event.start_mark.line + 1}, column {event.start_mark.column + 1}"
        if event.anchor is not None:
            self._reject(f"anchors and aliases are not allowed (found {event.anchor!r} at {where})")
        if getattr(event, "tag", None) is not None:
            self._reject(f"tags are not allowed (found {event.tag!r} at {where})")

    def _check_key(self, mapping: yaml.MappingNode, key: yaml.Node) -> None:
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
            self._reject(f"keys must be strings, found {getattr(key, 'value', key)!r}")
        seen = self._keys_seen.setdefault(id(mapping), set())
        if key.value in seen:
            self._reject(f"duplicate key {key.value!r}", key=key.value)
        seen.add(key.value)

    def _reject(self, message: str, *, key: str | None = None):
        path = [*self._path, key] if key is not None else self._path
        raise ConfigError([error(format_path(path), message)])


def load_yaml(text: str, *, max_bytes: int = 65536, max_depth: int = 20) -> dict[str, Any]:
    """Safely loads a YAML config document that must be a mapping; raises ConfigError.

    Rejects, without expanding anything: documents over `max_bytes`, anchors/aliases, explicit
    tags, nesting deeper than `max_depth`, and non-string or duplicate keys."""
    size = len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate is the reader's to reject
    if size > max_bytes:
        raise ConfigError([error("", f"the document is {size} bytes; the limit is {max_bytes}")])
    try:
        data = _compose_and_construct(text, max_depth)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([error("", _syntax_message(exc))]) from None
    except yaml.YAMLError as exc:  # e.g. a control character, found by the reader before parsing
        raise ConfigError([error("", f"invalid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        message = f"the document must be a mapping of keys to values, got {json_kind(data)}"
        raise ConfigError([error("", message)])
    return data


def _compose_and_construct(text: str, max_depth: int) -> Any:
    loader = _StrictLoader(text, max_depth)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
