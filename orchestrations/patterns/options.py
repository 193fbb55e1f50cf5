"""Config options of the orchestration patterns: each option checks one value and knows its default.

`parse_options` checks a whole mapping against a set of options, collecting every error with its
path (`routing.mode`, `mapping[1].draft`) instead of stopping at the first (the errors, paths and
suggestions are agents.runtime.validation's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.runtime.validation import Errors, check_known_keys, error, join

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Option(Protocol):
    default: Any

    def parse(self, value: Any, path: str, errors: Errors) -> Any: ...


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    default: str

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, str) and value in self.values:
            return value
        errors.append(error(path, f"must be one of: {', '.join(self.values)} (got {value!r})"))
        return self.default


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    default: float | None = None
    integer: bool = False
    low_inclusive: bool = True

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        kind = "an integer" if self.integer else "a number"
        types = int if self.integer else (int, float)
        # bool is an int subclass, but `rounds: true` is a mistake, not 1
        if isinstance(value, bool) or not isinstance(value, types):
            errors.append(error(path, f"must be {kind} (got {value!r})"))
            return self.default
        above_low = value >= self.low if self.low_inclusive else value > self.low
        if not (above_low and value <= self.high):
            lower = f"from {self.low:g}" if self.low_inclusive else f"greater than {self.low:g}"
            errors.append(error(path, f"must be {kind} {lower} up to {self.high:g} (got {value!r})"))
        return value


@dataclass(frozen=True)
class Text:
    default: str | None = None
    max_length: int = 200
    field_name: bool = False  # names an output field of the agents

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, str) or not value.strip():
            errors.append(error(path, f"must be a non-empty string (got {value!r})"))
        elif len(value) > self.max_length:
            errors.append(error(path, f"must be at most {self.max_length} characters"))
        elif self.field_name and not FIELD_NAME.fullmatch(value):
            errors.append(error(path, f"must be a field name (letters, digits, _), got {value!r}"))
        return value


@dataclass(frozen=True)
class Section:
    options: Mapping[str, Option]

    @property
    def default(self) -> dict[str, Any]:
        return {key: option.default for key, option in self.options.items()}

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, Mapping):
            errors.append(error(path, f"must be a mapping with keys: {', '.join(self.options)}"))
            return self.default
        return parse_options(self.options, value, path, errors)


def parse_options(
    options: Mapping[str, Option], data: Mapping[str, Any], prefix: str, errors: Errors
) -> dict[str, Any]:
    """Check `data` against `options`: every value checked, unknown keys rejected, defaults filled."""
    check_known_keys(data, list(options), prefix, errors, sorted_keys=True)
    return {
        key: option.default if data.get(key) is None else option.parse(data[key], join(prefix, key), errors)
        for key, option in options.items()
    }


@dataclass(frozen=True)
class ApprovalOption:
    """`approval: {after: <agent index or role>, timeout_s?, on_timeout: reject|fail}`: a person
    approves the output of that agent's calls before the run goes on (the index, 0-based, and the
    role are checked against the agents by `approval_check`)."""

    default: None = None

    def parse(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, Mapping):
            errors.append(
                error(path, "must be a mapping {after: <agent index or role>, timeout_s?, on_timeout?}")
            )
            return None
        check_known_keys(value, ["after", "timeout_s", "on_timeout"], path, errors, sorted_keys=True)
        after = value.get("after")
        valid_after = (isinstance(after, int) and not isinstance(after, bool) and after >= 0) or (
            isinstance(after, str) and after.strip()
        )
        if not valid_after:
            errors.append(
                error(join(path, "after"), f"must be an agent index (0, 1, ...) or a role (got {after!r})")
            )
        timeout = value.get("timeout_s")
        if timeout is not None:
            Number(0, 30 * 86400, low_inclusive=False).parse(timeout, join(path, "timeout_s"), errors)
        on_timeout = Choice(("reject", "fail"), default="reject")
        policy = value.get("on_timeout")
        policy = "reject" if policy is None else on_timeout.parse(policy, join(path, "on_timeout"), errors)
        return {"after": after, "timeout_s": timeout, "on_timeout": policy}


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


COMMON_OPTIONS: dict[str, Option] = {
    "timeout_s": Number(0, 3600, default=300, low_inclusive=False),
    "on_agent_error": Choice(("fail", "continue"), default="fail"),
    "max_total_cost_usd": Number(0, 1_000_000, low_inclusive=False),
}
