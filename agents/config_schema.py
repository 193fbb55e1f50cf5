"""The version-1 agent config schema (plain Python, no Django): `validate_agent_config` checks a
loaded document and fills in every default; `version_bump` says which version part a change bumps."""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents.runtime.schema import FIELD_TYPES, REASONING_FIELD_NAME, json_kind
from agents.runtime.validation import ConfigError, Errors, check_known_keys, error, join, suggestion
from agents.yaml_loader import load_yaml
from providers.llm.types import PROVIDER_KINDS

STRATEGIES = ("single_shot", "chain_of_thought", "react", "self_reflection")

MAX_SYSTEM_PROMPT_CHARS = 20_000
MAX_FIELDS = 50
MAX_ENUM_VALUES = 100
MAX_TOOLS = 20
MAX_MOCK_RESPONSES = 100

_PROVIDER_ID = re.compile(r"prov-[0-9a-f]{32}")
_AGENT_ID = re.compile(r"agent-[0-9a-f]{32}")
_MCP_SERVER_ID = re.compile(r"mcps-[0-9a-f]{32}")
# What MCP allows in a tool name (1 to 128 of letters, digits, `_`, `-`, `.`, `/`).
MCP_TOOL_NAME = re.compile(r"[A-Za-z0-9_./-]{1,128}")

Check = Callable[[Any, str, Errors], Any]

_REQUIRED = object()  # the key must be present
_OMIT = object()  # optional, and left out of the normalized config when absent


@dataclass(frozen=True)
class _Key:
    check: Check
    # _REQUIRED, _OMIT, None (optional, null when absent) or a default that `check` normalizes.
    default: Any = _REQUIRED


def _fail(errors: Errors, path: str, message: str) -> None:
    errors.append(error(path, message))


def _mapping(keys: Mapping[str, _Key]) -> Check:
    def check(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            return _fail(errors, path, f"must be a mapping, got {json_kind(value)}")
        check_known_keys(value, list(keys), path, errors)
        normalized: dict[str, Any] = {}
        for name, key in keys.items():
            key_path = join(path, name)
            if name in value and not (value[name] is None and key.default is None):
                normalized[name] = key.check(value[name], key_path, errors)
            elif name in value or key.default is None:
                normalized[name] = None
            elif key.default is _REQUIRED:
                _fail(errors, key_path, "is required")
            elif key.default is not _OMIT:
                normalized[name] = key.check(key.default, key_path, errors)
        return normalized

    return check


def _string(*, max_length: int, non_empty: bool = False) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if not isinstance(value, str):
            return _fail(errors, path, f"must be a string, got {json_kind(value)}")
        if non_empty and not value.strip():
            return _fail(errors, path, "must not be empty")
        if len(value) > max_length:
            return _fail(errors, path, f"must be at most {max_length} characters, got {len(value)}")
        return value

    return check


def _choice(options: Sequence[str]) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        if isinstance(value, str):
            return _fail(errors, path, f"unknown value {value!r}; {suggestion(value, options)}")
        return _fail(errors, path, f"must be one of {', '.join(options)}, got {json_kind(value)}")

    return check


def _pattern(regex: re.Pattern[str], description: str) -> Check:
    def check(value: Any, path: str, errors: Errors) -> str | None:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        return _fail(errors, path, f"must be {description}, got {value!r}")

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: Any, path: str, errors: Errors) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return _fail(errors, path, f"must be an integer, got {json_kind(value)}")
        if not low <= value <= high:
            return _fail(errors, path, f"must be between {low} and {high}, got {value}")
        return value

    return check


def _number(low: float, high: float = math.inf, *, low_exclusive: bool = False) -> Check:
    bounds = f"greater than {low}" if low_exclusive else f"at least {low}"
    if high != math.inf:
        bounds += f" and at most {high}"

    def check(value: Any, path: str, errors: Errors) -> float | int | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return _fail(errors, path, f"must be a number, got {json_kind(value)}")
        above_low = value > low if low_exclusive else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            return _fail(errors, path, f"must be {bounds}, got {value}")
        return value

    return check


def _boolean(value: Any, path: str, errors: Errors) -> bool | None:
    if not isinstance(value, bool):
        return _fail(errors, path, f"must be true or false, got {json_kind(value)}")
    return value


def _list(item: Check, *, max_items: int, min_items: int = 0) -> Check:
    def check(value: Any, path: str, errors: Errors) -> list[Any] | None:
        if not isinstance(value, list):
            return _fail(errors, path, f"must be a list, got {json_kind(value)}")
        if not min_items <= len(value) <= max_items:
            return _fail(
                errors, path, f"must have between {min_items} and {max_items} items, got {len(value)}"
            )
        return [item(element, f"{path}[{index}]", errors) for index, element in enumerate(value)]

    return check


def _check_unique(items: Any, key: str, *, what: str, path: str, errors: Errors) -> None:
    seen: set[Any] = set()
    for index, item in enumerate(items or []):
        value = (item or {}).get(key)
        if value is not None and value in seen:
            _fail(errors, f"{path}[{index}].{key}", f"duplicate {what} {value!r}")
        seen.add(value)


def _field_name(value: Any, path: str, errors: Errors) -> str | None:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value) or len(value) > 64:
        return _fail(errors, path, f"must be a Python identifier of at most 64 characters, got {value!r}")
    if value.startswith("_"):  # reserved: exported Kaizen signatures and Python internals use them
        return _fail(errors, path, f"must not start with an underscore, got {value!r}")
    return value


_FIELD_KEYS = {
    "name": _Key(_field_name),
    "type": _Key(_choice(FIELD_TYPES)),
    "description": _Key(_string(max_length=2000), ""),
    "enum_values": _Key(
        _list(_string(max_length=200, non_empty=True), min_items=1, max_items=MAX_ENUM_VALUES), _OMIT
    ),
}
_INPUT_KEYS = {**_FIELD_KEYS, "required": _Key(_boolean, True)}


def _field(keys: Mapping[str, _Key]) -> Check:
    mapping = _mapping(keys)

    def check(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
        field = mapping(value, path, errors)
        if field is None:
            return None
        if field.get("type") == "enum" and "enum_values" not in field:
            _fail(errors, join(path, "enum_values"), "is required for an enum field")
        elif field.get("type") not in ("enum", None) and "enum_values" in field:
            _fail(errors, join(path, "enum_values"), "is only allowed on an enum field")
        elif field.get("enum_values") and len(set(field["enum_values"])) != len(field["enum_values"]):
            _fail(errors, join(path, "enum_values"), "must not repeat a value")
        return field

    return check


_SIGNATURE_KEYS = {
    "system_prompt": _Key(_string(max_length=MAX_SYSTEM_PROMPT_CHARS)),
    "inputs": _Key(_list(_field(_INPUT_KEYS), max_items=MAX_FIELDS)),
    "outputs": _Key(_list(_field(_FIELD_KEYS), min_items=1, max_items=MAX_FIELDS)),
}

_MOCK_ONLY_KEYS = ("responses", "latency_ms")


def _mock_response(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return _fail(errors, path, f"must be a mapping such as {{response: ...}}, got {json_kind(value)}")
    return value


_PROVIDER_KEYS = {
    "provider": _Key(_choice(PROVIDER_KINDS)),
    "model": _Key(_string(max_length=200, non_empty=True)),
    "provider_id": _Key(_pattern(_PROVIDER_ID, "'prov-' followed by 32 hex characters"), None),
    "responses": _Key(_list(_mock_response, max_items=MAX_MOCK_RESPONSES), _OMIT),
    "latency_ms": _Key(_number(0, 60_000), _OMIT),
}

_CONFIG_KEYS = {
    "temperature": _Key(_number(0, 2), 0.7),
    "max_tokens": _Key(_integer(1, 200_000), 1024),
    "strategy": _Key(_choice(STRATEGIES), "single_shot"),
    "budget_limit_usd": _Key(_number(0), None),
    "timeout_s": _Key(_number(0, 600, low_exclusive=True), 60),
    "max_retries": _Key(_integer(0, 5), 2),
    "max_cycles": _Key(_integer(1, 5), 2),
    "max_steps": _Key(_integer(1, 20), 5),
}

_TOOL_KEYS = {
    "agent_id": _Key(_pattern(_AGENT_ID, "'agent-' followed by 32 hex characters")),
    "description": _Key(_string(max_length=2000), None),
}
_MCP_TOOL_KEYS = {
    "mcp_server": _Key(_pattern(_MCP_SERVER_ID, "'mcps-' followed by 32 hex characters")),
    "tool": _Key(_pattern(MCP_TOOL_NAME, "an MCP tool name (letters, digits, _ - . /, at most 128)")),
    "description": _Key(_string(max_length=2000), None),
    "requires_approval": _Key(_boolean, False),
    # How long a call waits for its approval, and what then: reject (the model is told) or fail.
    "approval_timeout_s": _Key(_number(0, 30 * 86400, low_exclusive=True), _OMIT),
    "on_approval_timeout": _Key(_choice(("reject", "fail")), _OMIT),
}
_AGENT_TOOL = _mapping(_TOOL_KEYS)
_MCP_TOOL = _mapping(_MCP_TOOL_KEYS)


def _tool(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
    """A react tool: another agent (`agent_id`) or a tool of an MCP server (`mcp_server` + `tool`)."""
    if isinstance(value, dict) and "mcp_server" in value:
        return _MCP_TOOL(value, path, errors)
    if isinstance(value, dict) and "agent_id" in value:
        return _AGENT_TOOL(value, path, errors)
    got = "a mapping with neither agent_id nor mcp_server" if isinstance(value, dict) else json_kind(value)
    return _fail(
        errors, path, f"must be {{agent_id: agent-...}} or {{mcp_server: mcps-..., tool: NAME}}, got {got}"
    )


_AGENT_CONFIG = _mapping(
    {
        "signature": _Key(_mapping(_SIGNATURE_KEYS)),
        "provider": _Key(_mapping(_PROVIDER_KEYS)),
        "config": _Key(_mapping(_CONFIG_KEYS), {}),
        "tools": _Key(_list(_tool, max_items=MAX_TOOLS), []),
    }
)


def validate_agent_config(
    data: Any, *, provider_exists: Callable[[str, str], bool] | None = None
) -> dict[str, Any]:
    """Checks a loaded version-1 agent config and returns it normalized with every default filled in
    (optional keys without a default are null); raises ConfigError listing every error with its path.

    `provider_exists(kind, provider_id)`, when given, must confirm a `provider.provider_id`."""
    errors: Errors = []
    config = _AGENT_CONFIG(data, "", errors)
    if config is not None:
        _check_cross_field_rules(config, errors)
        if not errors and provider_exists is not None:
            _check_provider_exists(config["provider"], provider_exists, errors)
    if errors:
        raise ConfigError(errors)
    return config


def _check_cross_field_rules(config: dict[str, Any], errors: Errors) -> None:
    signature = config.get("signature") or {}
    provider = config.get("provider") or {}
    settings = config.get("config") or {}
    _check_unique(signature.get("inputs"), "name", what="input name", path="signature.inputs", errors=errors)
    _check_unique(
        signature.get("outputs"), "name", what="output name", path="signature.outputs", errors=errors
    )
    _check_unique(config.get("tools"), "agent_id", what="tool", path="tools", errors=errors)
    _check_unique_mcp_tools(config.get("tools") or [], errors)
    if provider.get("provider") not in (None, "mock"):
        for key in _MOCK_ONLY_KEYS:
            if key in provider:
                _fail(errors, f"provider.{key}", "is only allowed with the mock provider")
    if config.get("tools") and settings.get("strategy") not in (None, "react"):
        _fail(errors, "tools", "tools are only used by the react strategy (config.strategy: react)")
    if settings.get("strategy") == "chain_of_thought":
        for index, field in enumerate(signature.get("outputs") or []):
            if (field or {}).get("name") == REASONING_FIELD_NAME:
                message = f"{REASONING_FIELD_NAME!r} is reserved by the chain_of_thought strategy"
                _fail(errors, f"signature.outputs[{index}].name", message)


def _check_unique_mcp_tools(tools: list[Any], errors: Errors) -> None:
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(tools):
        if not entry or "mcp_server" not in entry:
            continue
        key = (entry.get("mcp_server"), entry.get("tool"))
        if key in seen:
            _fail(errors, f"tools[{index}].tool", f"duplicate tool {key[1]!r} of {key[0]!r}")
        seen.add(key)


def _check_provider_exists(
    provider: Mapping[str, Any], provider_exists: Callable[[str, str], bool], errors: Errors
) -> None:
    provider_id = provider["provider_id"]
    if provider_id is not None and not provider_exists(provider["provider"], provider_id):
        message = f"no {provider['provider']} provider {provider_id!r} in this organization"
        _fail(errors, "provider.provider_id", message)


def parse_agent_config(
    text: str, *, provider_exists: Callable[[str, str], bool] | None = None
) -> dict[str, Any]:
    """Loads and validates an agent config YAML document; raises ConfigError."""
    return validate_agent_config(load_yaml(text), provider_exists=provider_exists)


def version_bump(old_config: Mapping[str, Any], new_config: Mapping[str, Any]) -> Literal["minor", "patch"]:
    """The version part to bump when an agent's config changes from `old_config` to `new_config`.

    "minor" when the signature's interface changes: an input or output added, removed or renamed,
    or its type, `required` flag or enum values (as a set) changed. "patch" for everything else:
    prompt, descriptions, field order, provider, config, tools."""
    return "patch" if _interface(old_config) == _interface(new_config) else "minor"


def _interface(config: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    signature = config.get("signature") or {}
    return tuple(
        {
            field["name"]: (
                field["type"],
                field.get("required", True),
                frozenset(field.get("enum_values") or ()),
            )
            for field in signature.get(part) or []
        }
        for part in ("inputs", "outputs")
    )
