"""MCP server slots of agent templates. A template cannot know an organization's `mcps-…` ids, so an
MCP tool of a template names its server by a slot: `{mcp_server: {slot: orders}, tool: lookup_order}`.
`use` fills every slot with one of the caller's servers (`mcp_servers: {orders: mcps-…}`), and the
agent's config is then validated like any other (agents.config_schema, then the organization's
servers and their allow-lists).

To validate a template's config with that same schema, each slot stands in as a placeholder id of
its own while the config is checked, and is put back in the normalized config afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from agents.runtime.validation import Errors, error, join, pattern

SLOT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_slot_name = pattern(SLOT_NAME, "a slot name (a-z, 0-9, _, starting with a letter, at most 40)")


def tool_slot(entry: Any) -> str | None:
    """The slot an MCP tool entry names its server by, or None (a server id, or another tool)."""
    server = entry.get("mcp_server") if isinstance(entry, Mapping) else None
    if isinstance(server, Mapping):
        slot = server.get("slot")
        return slot if isinstance(slot, str) else ""
    return None


def slot_indexes(tools: Iterable[Any]) -> dict[int, str]:
    """`{index in tools: slot}` of the tool entries that name their server by a slot."""
    return {index: slot for index, entry in enumerate(tools) if (slot := tool_slot(entry)) is not None}


def slot_errors(document: Any) -> Errors:
    """What is wrong with the slots of a loaded agent config (the rest is the schema's)."""
    tools = document.get("tools") if isinstance(document, Mapping) else None
    errors: Errors = []
    for index, slot in slot_indexes(tools if isinstance(tools, list) else []).items():
        path = f"tools[{index}].mcp_server"
        if set(tools[index]["mcp_server"]) != {"slot"}:
            errors.append(error(path, "must be an MCP server id (mcps-…) or {slot: NAME}, nothing else"))
        else:
            _slot_name(slot, join(path, "slot"), errors)
    return errors


def slots_held(document: Any) -> Any:
    """A copy of a loaded agent config with each slot replaced by a placeholder server id (one per
    slot), as the schema expects an id there."""
    tools = document.get("tools") if isinstance(document, Mapping) else None
    indexes = slot_indexes(tools if isinstance(tools, list) else [])
    if not indexes:
        return document
    placeholders = {slot: f"mcps-{n:032x}" for n, slot in enumerate(dict.fromkeys(indexes.values()))}
    return {**document, "tools": tools_filled(tools, placeholders)}


def slots_restored(config: dict[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """The normalized `config` of `slots_held(document)` with its slots put back."""
    indexes = slot_indexes(document.get("tools") or [])
    if not indexes:
        return config
    tools = [
        {**entry, "mcp_server": {"slot": indexes[index]}} if index in indexes else entry
        for index, entry in enumerate(config["tools"])
    ]
    return {**config, "tools": tools}


def tools_filled(tools: list[Any], servers: Mapping[str, str]) -> list[Any]:
    """`tools` with the server of each slot entry set to `servers[slot]` (slots not in `servers`
    kept)."""
    filled = []
    for entry in tools:
        slot = tool_slot(entry)
        filled.append({**entry, "mcp_server": servers[slot]} if slot in servers else entry)
    return filled


def template_slots(configs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the templates of these normalized configs need: `[{slot, tools: [name, …]}]`, each slot
    once, in the order of first use."""
    slots: dict[str, list[str]] = {}
    for config in configs:
        for entry in config.get("tools") or []:
            slot = tool_slot(entry)
            if slot is not None and entry["tool"] not in slots.setdefault(slot, []):
                slots[slot].append(entry["tool"])
    return [{"slot": slot, "tools": tools} for slot, tools in slots.items()]
