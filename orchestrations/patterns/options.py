"""Config options of the orchestration patterns: each option is a `Key` of agents.runtime.validation
(one of its checks and the option's default), so the options read their mistakes exactly as the
agent config schema does. `options` checks a pattern's whole config, collecting every error with
its path (`routing.mode`, `mapping[1].draft`) instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agents.runtime.validation import (
    OMIT,
    Check,
    Errors,
    Key,
    choice,
    error,
    fail,
    mapping,
    number,
    pattern,
)

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An option naming an output field of the agents.
FIELD_NAME_OPTION = pattern(
    re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}"), "a field name (letters, digits, _, at most 200)"
)


def options(keys: Mapping[str, Key]) -> Check:
    """The options `keys` as one mapping check; a null (a YAML key left empty) is an option not given."""
    return mapping(keys, null_is_default=True)


def _agent_ref(value: Any, path: str, errors: Errors) -> int | str | None:
    if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
        isinstance(value, str) and value.strip()
    ):
        return value
    return fail(errors, path, f"must be an agent index (0, 1, ...) or a role, got {value!r}")


# `approval: {after: <agent index or role>, timeout_s?, on_timeout: reject|fail}`: a person approves
# the output of that agent's calls before the run goes on (the index, 0-based, and the role are
# checked against the agents by `approval_check`). Left out of configs that ask for none.
APPROVAL_OPTION = Key(
    options(
        {
            "after": Key(_agent_ref),
            "timeout_s": Key(number(0, 30 * 86400, low_exclusive=True), None),
            "on_timeout": Key(choice(("reject", "fail")), "reject"),
        }
    ),
    OMIT,
)


def approval_check(config: Mapping[str, Any], roles: list[str]) -> Errors:
    """An approval's `after` names an agent of the orchestration: its index or one of its roles."""
    approval = config.get("approval")
    if not approval:
        return []
    after = approval["after"]
    if isinstance(after, int) and after >= len(roles):
        return [
            error(
                "approval.after",
                f"is agent index {after}, but there are {len(roles)} agents (0 to {len(roles) - 1})",
            )
        ]
    if isinstance(after, str) and after not in roles:
        return [
            error(
                "approval.after", f"names no role of these agents; one of: {', '.join(dict.fromkeys(roles))}"
            )
        ]
    return []


COMMON_OPTIONS: dict[str, Key] = {
    "timeout_s": Key(number(0, 3600, low_exclusive=True), 300),
    "on_agent_error": Key(choice(("fail", "continue")), "fail"),
    "max_total_cost_usd": Key(number(0, 1_000_000, low_exclusive=True), None),
}
