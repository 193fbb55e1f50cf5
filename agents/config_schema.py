"""The version-1 agent config schema (plain Python, no Django): `validate_agent_config` checks a
loaded document and fills in every default; `version_bump` says which version part a change bumps."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from agents.runtime.schema import FIELD_TYPES, REASONING_FIELD_NAME, json_kind
from agents.runtime.validation import (
    OMIT,
    Check,
    ConfigError,
    Errors,
    Key,
    boolean,
    choice,
    fail,
    integer,
    join,
    list_of,
    mapping,
    number,
    pattern,
    string,
)
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


def _check_unique(items: Any, key: str, *, what: str, path: str, errors: Errors) -> None:
    seen: set[Any] = set()
    for index, item in enumerate(items or []):
        value = (item or {}).get(key)
        if value is not None and value in seen:
            fail(errors, f"{path}[{index}].{key}", f"duplicate {what} {value!r}")
        seen.add(value)


def _field_name(value: Any, path: str, errors: Errors) -> str | None:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value) or len(value) > 64:
        return fail(errors, path, f"must be a Python identifier of at most 64 characters, got {value!r}")
    if value.startswith("_"):  # reserved: exported Kaizen signatures and Python internals use them
        return fail(errors, path, f"must not start with an underscore, got {value!r}")
    return value


_FIELD_KEYS = {
    "name": Key(_field_name),
    "type": Key(choice(FIELD_TYPES)),
    "description": Key(string(max_length=2000), ""),
    "enum_values": Key(
        list_of(string(max_length=200, non_empty=True), min_items=1, max_items=MAX_ENUM_VALUES), OMIT
    ),
}
_INPUT_KEYS = {**_FIELD_KEYS, "required": Key(boolean, True)}


def _field(keys: Mapping[str, Key]) -> Check:
    fields = mapping(keys)

    def check(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
        field = fields(value, path, errors)
        if field is None:
            return None
        if field.get("type") == "enum" and "enum_values" not in field:
            fail(errors, join(path, "enum_values"), "is required for an enum field")
        elif field.get("type") not in ("enum", None) and "enum_values" in field:
            fail(errors, join(path, "enum_values"), "is only allowed on an enum field")
        elif field.get("enum_values") and len(set(field["enum_values"])) != len(field["enum_values"]):
            fail(errors, join(path, "enum_values"), "must not repeat a value")
        return field

    return check


_SIGNATURE_KEYS = {
    "system_prompt": Key(string(max_length=MAX_SYSTEM_PROMPT_CHARS)),
    "inputs": Key(list_of(_field(_INPUT_KEYS), max_items=MAX_FIELDS)),
    "outputs": Key(list_of(_field(_FIELD_KEYS), min_items=1, max_items=MAX_FIELDS)),
}

_MOCK_ONLY_KEYS = ("responses", "latency_ms")


def _mock_response(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return fail(errors, path, f"must be a mapping such as {{response: ...}}, got {json_kind(value)}")
    return value


_PROVIDER_KEYS = {
    "provider": Key(choice(PROVIDER_KINDS)),
    "model": Key(string(max_length=200, non_empty=True)),
    "provider_id": Key(pattern(_PROVIDER_ID, "'prov-' followed by 32 hex characters"), None),
    "responses": Key(list_of(_mock_response, max_items=MAX_MOCK_RESPONSES), OMIT),
    "latency_ms": Key(number(0, 60_000), OMIT),
}

_CONFIG_KEYS = {
    "temperature": Key(number(0, 2), 0.7),
    "max_tokens": Key(integer(1, 200_000), 1024),
    "strategy": Key(choice(STRATEGIES), "single_shot"),
    "budget_limit_usd": Key(number(0), None),
    "timeout_s": Key(number(0, 600, low_exclusive=True), 60),
    "max_retries": Key(integer(0, 5), 2),
    "max_cycles": Key(integer(1, 5), 2),
    "max_steps": Key(integer(1, 20), 5),
}

_TOOL_KEYS = {
    "agent_id": Key(pattern(_AGENT_ID, "'agent-' followed by 32 hex characters")),
    "description": Key(string(max_length=2000), None),
}
_MCP_TOOL_KEYS = {
    "mcp_server": Key(pattern(_MCP_SERVER_ID, "'mcps-' followed by 32 hex characters")),
    "tool": Key(pattern(MCP_TOOL_NAME, "an MCP tool name (letters, digits, _ - . /, at most 128)")),
    "description": Key(string(max_length=2000), None),
    "requires_approval": Key(boolean, False),
    # How long a call waits for its approval, and what then: reject (the model is told) or fail.
    "approval_timeout_s": Key(number(0, 30 * 86400, low_exclusive=True), OMIT),
    "on_approval_timeout": Key(choice(("reject", "fail")), OMIT),
}
_AGENT_TOOL = mapping(_TOOL_KEYS)
_MCP_TOOL = mapping(_MCP_TOOL_KEYS)


def _tool(value: Any, path: str, errors: Errors) -> dict[str, Any] | None:
    """A react tool: another agent (`agent_id`) or a tool of an MCP server (`mcp_server` + `tool`)."""
    if isinstance(value, dict) and "mcp_server" in value:
        return _MCP_TOOL(value, path, errors)
    if isinstance(value, dict) and "agent_id" in value:
        return _AGENT_TOOL(value, path, errors)
    got = "a mapping with neither agent_id nor mcp_server" if isinstance(value, dict) else json_kind(value)
    return fail(
        errors, path, f"must be {{agent_id: agent-...}} or {{mcp_server: mcps-..., tool: NAME}}, got {got}"
    )


_AGENT_CONFIG = mapping(
    {
        "signature": Key(mapping(_SIGNATURE_KEYS)),
        "provider": Key(mapping(_PROVIDER_KEYS)),
        "config": Key(mapping(_CONFIG_KEYS), {}),
        "tools": Key(list_of(_tool, max_items=MAX_TOOLS), []),
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
                fail(errors, f"provider.{key}", "is only allowed with the mock provider")
    if config.get("tools") and settings.get("strategy") not in (None, "react"):
        fail(errors, "tools", "tools are only used by the react strategy (config.strategy: react)")
    if settings.get("strategy") == "chain_of_thought":
        for index, field in enumerate(signature.get("outputs") or []):
            if (field or {}).get("name") == REASONING_FIELD_NAME:
                message = f"{REASONING_FIELD_NAME!r} is reserved by the chain_of_thought strategy"
                fail(errors, f"signature.outputs[{index}].name", message)


def _check_unique_mcp_tools(tools: list[Any], errors: Errors) -> None:
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(tools):
        if not entry or "mcp_server" not in entry:
            continue
        key = (entry.get("mcp_server"), entry.get("tool"))
        if key in seen:
            fail(errors, f"tools[{index}].tool", f"duplicate tool {key[1]!r} of {key[0]!r}")
        seen.add(key)


def _check_provider_exists(
    provider: Mapping[str, Any], provider_exists: Callable[[str, str], bool], errors: Errors
) -> None:
    provider_id = provider["provider_id"]
    if provider_id is not None and not provider_exists(provider["provider"], provider_id):
        message = f"no {provider['provider']} provider {provider_id!r} in this organization"
        fail(errors, "provider.provider_id", message)


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
