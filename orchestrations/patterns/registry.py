"""The registry of orchestration patterns, in the order GET /api/patterns lists them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.runtime.types import AgentSpec
from orchestrations.patterns import (
    blackboard,
    consensus,
    debate,
    ensemble,
    handoff,
    parallel,
    router,
    sequential,
    supervisor_worker,
)
from orchestrations.patterns.base import Pattern

PATTERNS: dict[str, Pattern] = {
    module.PATTERN.id: module.PATTERN
    for module in (
        sequential,
        parallel,
        supervisor_worker,
        router,
        ensemble,
        consensus,
        debate,
        handoff,
        blackboard,
    )
}


def pattern_list() -> list[dict[str, Any]]:
    """Every pattern's id, name, description, agent count bounds and roles (GET /api/patterns)."""
    return [pattern.describe() for pattern in PATTERNS.values()]


def pattern_input_fields(
    pattern_id: str, agents: Sequence[AgentSpec], config: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The input fields callers of an orchestration give (checked and advertised on every channel)."""
    return PATTERNS[pattern_id].input_fields_for(agents, config)
