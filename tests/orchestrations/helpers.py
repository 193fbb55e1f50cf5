"""Agents, orchestrations and ledger readers for the orchestration integration tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from agents.models import Agent
from observability.models import Run, RunEvent, Span
from orchestrations.models import Orchestration
from orchestrations.patterns import validate_pattern_config
from tests.agents import factories
from tests.agents.agent_configs import team_agent_yaml


def says(**output: Any) -> dict[str, Any]:
    """A scripted mock answer: the structured output `output`."""
    return {"response": output}


def make_agent(organization, name: str, *, description: str = "", **yaml_options: Any) -> Agent:
    """A member of a team: `tests.agents.factories.make_agent` with `team_agent_yaml(**yaml_options)`."""
    return factories.make_agent(
        organization,
        team_agent_yaml(**yaml_options),
        name=name,
        description=description or f"{name} of the team",
    )


def make_orchestration(
    organization, pattern: str, agents: Sequence[Agent], *, config_yaml: str = "", name: str = "", **fields
) -> Orchestration:
    """An orchestration stored directly (no audit row) with its validated pattern config."""
    data = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    config = validate_pattern_config(pattern, data, agent_count=len(agents))
    return Orchestration.objects.create(
        organization=organization,
        name=name or f"{pattern} team",
        pattern=pattern,
        config_yaml=config_yaml,
        config=config,
        agent_ids=[agent.pk for agent in agents],
        **fields,
    )


# --- reading the ledger --------------------------------------------------------------------------


def stored_events(run_id: str) -> list[RunEvent]:
    """The run's events in `seq` order; asserts that `seq` runs 1, 2, 3, ... without a gap."""
    events = list(RunEvent.objects.filter(run_id=run_id).order_by("seq"))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    return events


def event_types(events: Iterable[RunEvent | Mapping[str, Any]]) -> list[str]:
    return [event["type"] if isinstance(event, Mapping) else event.type for event in events]


def steps(events: Iterable[RunEvent]) -> list[dict[str, Any]]:
    """The data of the `pattern.step` events, in order."""
    return [event.data for event in events if event.type == "pattern.step"]


def agent_event_pairs_are_balanced(events: Sequence[RunEvent]) -> None:
    """Every agent.started is followed (later) by exactly one agent.completed/failed of that agent."""
    open_calls: dict[str, int] = {}
    for event in events:
        if event.type == "agent.started":
            open_calls[event.agent_id] = open_calls.get(event.agent_id, 0) + 1
        elif event.type in ("agent.completed", "agent.failed"):
            assert open_calls.get(event.agent_id, 0) > 0, f"{event.type} before agent.started"
            open_calls[event.agent_id] -= 1
    assert not any(open_calls.values()), open_calls


def assert_span_tree(run: Run) -> dict[str, list[Span]]:
    """Checks the tree run -> pattern -> agent -> llm and returns the run's spans by kind."""
    spans = list(Span.objects.filter(run=run))
    by_id = {span.pk: span for span in spans}
    by_kind: dict[str, list[Span]] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    (root,) = by_kind["run"]
    assert root.parent_id is None
    expected_parent = {"pattern": "run", "agent": "pattern", "llm": "agent"}
    for span in spans:
        if span.kind in expected_parent:
            assert by_id[span.parent_id].kind == expected_parent[span.kind], (span.kind, span.name)
    for span in by_kind.get("agent", []):
        assert any(child.parent_id == span.pk for child in by_kind.get("llm", [])), span.name
    if run.status == Run.Status.COMPLETED:
        assert all(span.status == "completed" and span.ended_at for span in spans)
        assert sum(span.cost_usd for span in by_kind.get("llm", [])) == run.cost_usd
    return by_kind
