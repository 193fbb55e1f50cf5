"""What tells two versions of an agent apart: the next version number, and a short human account
of what changed between two validated configs (an `AgentVersion`'s change summary)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_SUMMARY = 500


def next_version(version: str, part: str) -> str:
    """`1.2.3` bumped by "minor" is `1.3.0`, by "patch" `1.2.4`."""
    major, minor, patch = (int(number) for number in version.split("."))
    return f"{major}.{minor + 1}.0" if part == "minor" else f"{major}.{minor}.{patch + 1}"


def clip_summary(text: str) -> str:
    """A change summary cut to what an `AgentVersion` stores."""
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def describe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A short human account of what differs between two normalized configs, e.g.
    `signature changed: outputs added priority; config changed: temperature 0.7 -> 0.2`."""
    parts = []
    signature = _signature_changes(old.get("signature") or {}, new.get("signature") or {})
    if signature:
        parts.append("signature changed: " + "; ".join(signature))
    provider = _provider_changes(old.get("provider") or {}, new.get("provider") or {})
    if provider:
        parts.append("provider changed: " + "; ".join(provider))
    settings = _value_changes(old.get("config") or {}, new.get("config") or {})
    if settings:
        parts.append("config changed: " + ", ".join(settings))
    tools = _tool_changes(old.get("tools") or [], new.get("tools") or [])
    if tools:
        parts.append("tools changed: " + "; ".join(tools))
    return "; ".join(parts) or "config changed"


def _signature_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    found = []
    for side in ("inputs", "outputs"):
        before = {field["name"]: field for field in old.get(side) or []}
        after = {field["name"]: field for field in new.get(side) or []}
        added = [name for name in after if name not in before]
        removed = [name for name in before if name not in after]
        changed = [name for name in after if name in before and before[name] != after[name]]
        for verb, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                found.append(f"{side} {verb} {', '.join(names)}")
        if not (added or removed or changed) and list(before) != list(after):
            found.append(f"{side} reordered")
    if old.get("system_prompt") != new.get("system_prompt"):
        found.append("system prompt edited")
    return found


def _provider_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    found = []
    if (old.get("provider"), old.get("model")) != (new.get("provider"), new.get("model")):
        found.append(f"{old.get('provider')} {old.get('model')} -> {new.get('provider')} {new.get('model')}")
    if old.get("provider_id") != new.get("provider_id"):
        found.append(f"provider_id {old.get('provider_id')} -> {new.get('provider_id')}")
    for key in ("responses", "latency_ms"):
        if old.get(key) != new.get(key):
            found.append(f"mock {key} changed")
    return found


def _value_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    # In the new config's order: it comes fresh from the schema, while PostgreSQL's jsonb stores
    # the old one with its keys sorted its own way.
    keys = [*new, *(key for key in old if key not in new)]
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in keys if old.get(key) != new.get(key)]


def _tool_key(tool: Mapping[str, Any]) -> str:
    """An agent tool by its agent id, an MCP tool as `server/tool`."""
    return tool["agent_id"] if "agent_id" in tool else f"{tool['mcp_server']}/{tool['tool']}"


def _tool_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    before = {_tool_key(tool): tool for tool in old}
    after = {_tool_key(tool): tool for tool in new}
    found = []
    for verb, ids in (
        ("added", [agent_id for agent_id in after if agent_id not in before]),
        ("removed", [agent_id for agent_id in before if agent_id not in after]),
        (
            "changed",
            [agent_id for agent_id in after if agent_id in before and before[agent_id] != after[agent_id]],
        ),
    ):
        if ids:
            found.append(f"{verb} {', '.join(ids)}")
    if not found and list(before) != list(after):
        found.append("reordered")
    return found
