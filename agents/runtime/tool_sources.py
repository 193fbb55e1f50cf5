"""MCP tools as the engine sees them (plain Python): the `tools:` entries that name one, what a server
says about a tool, and the caller the Django side implements (agents.mcp_tools) to list and call them.

The engine never sees a server's URL or auth headers: it names a server by id, and the caller,
bound to the run's organization, finds the server, applies the limits (connect timeout, total
deadline, result size) and raises a CodedError when a call cannot be made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from studio.errors import CodedError


@dataclass(frozen=True)
class McpToolRef:
    """A `tools:` entry `{mcp_server, tool, description?, requires_approval?}` of an agent config."""

    server_id: str
    tool: str
    description: str | None = None
    requires_approval: bool = False
    approval_timeout_s: float | None = None  # then `on_approval_timeout`: reject | fail
    on_approval_timeout: str = "reject"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> McpToolRef:
        return cls(
            server_id=entry["mcp_server"],
            tool=entry["tool"],
            description=entry.get("description"),
            requires_approval=bool(entry.get("requires_approval")),
            approval_timeout_s=entry.get("approval_timeout_s"),
            on_approval_timeout=entry.get("on_approval_timeout") or "reject",
        )


def mcp_tool_refs(entries: Sequence[Mapping[str, Any]]) -> tuple[McpToolRef, ...]:
    """The MCP entries of a config's `tools:` list, in order (agent entries are left out)."""
    return tuple(McpToolRef.from_entry(entry) for entry in entries if "mcp_server" in entry)


@dataclass(frozen=True)
class McpToolInfo:
    """A tool as its server lists it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class McpToolOutput:
    """A call's result as the model reads it; `is_error` when the server reported the call failed."""

    text: str
    is_error: bool = False


class McpToolError(CodedError):
    """A tool call that could not be made or answered (unreachable, timed out, too large, refused).
    It goes back to the model as a tool error; the run goes on."""

    status = 502
    code = "mcp_unreachable"


class McpToolCaller(Protocol):
    """Lists and calls the MCP tools of one organization's servers."""

    async def list_tools(self, server_id: str) -> Sequence[McpToolInfo]:
        """The server's tools (its allow-list applied); raises McpToolError."""
        ...

    async def call_tool(self, server_id: str, tool: str, arguments: Mapping[str, Any]) -> McpToolOutput:
        """Calls one tool; raises McpToolError when no answer came (a tool's own failure is an
        output with `is_error`)."""
        ...

    def redact(self, value: Any) -> Any:
        """`value` fit for a span or an event: secret-looking fields and the server's secrets masked."""
        ...
