"""Validation of a pattern's config: every key checked, defaults filled (plain Python, no Django).

Every pattern takes `timeout_s` [300], `on_agent_error` fail|continue [fail],
`max_total_cost_usd` [none] and, when given, `approval` {after, timeout_s?, on_timeout?}; the keys
of each pattern are its module's `PATTERN.options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.runtime.validation import ConfigError, Errors, choice, error
from orchestrations.patterns.options import APPROVAL_OPTION, COMMON_OPTIONS, approval_check, options
from orchestrations.patterns.registry import PATTERNS


def validate_pattern_config(pattern_id: str, data: Mapping[str, Any] | None, *, agent_count: int) -> dict:
    """The pattern's config with every default filled in; raises ConfigError listing every problem
    (unknown pattern, agent count out of bounds, unknown keys, wrong types or bounds) with its path."""
    errors: Errors = []
    if choice(tuple(PATTERNS))(pattern_id, "pattern", errors) is None:
        raise ConfigError(errors)
    pattern = PATTERNS[pattern_id]
    if not pattern.min_agents <= agent_count <= pattern.max_agents:
        bounds = f"{pattern.min_agents} to {pattern.max_agents}"
        errors.append(error("agent_ids", f"{pattern.id} takes {bounds} agents, got {agent_count}"))
    check = options({**COMMON_OPTIONS, **pattern.options, "approval": APPROVAL_OPTION})
    if data is not None and not isinstance(data, Mapping):
        check(data, "", errors)  # must be a mapping
        raise ConfigError(errors)
    config = check(dict(data or {}), "", errors)
    if not errors and pattern.check:
        errors += pattern.check(config, agent_count)
    if not errors:
        errors += approval_check(config, pattern.roles_for(agent_count))
    if errors:
        raise ConfigError(errors)
    return config
