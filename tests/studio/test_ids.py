"""Prefixed ids: the pattern the URL routes and the schema use matches what `new_id` makes."""

from __future__ import annotations

import re

from studio.ids import id_pattern, new_id


def test_id_pattern_matches_exactly_the_ids_of_its_prefix():
    pattern = id_pattern("agent")
    assert re.fullmatch(pattern, new_id("agent"))
    assert not re.fullmatch(pattern, new_id("orch"))
    assert not re.fullmatch(pattern, "agent-" + "A" * 32)  # upper case is not what new_id makes
    assert not re.fullmatch(pattern, new_id("agent")[:-1])


def test_the_agent_config_schema_checks_ids_in_the_one_format():
    """agents.config_schema is plain Python (no Django, so not studio.ids): its own id patterns
    must stay the format `id_pattern` describes."""
    from agents import config_schema

    for compiled, prefix in (
        (config_schema._PROVIDER_ID, "prov"),
        (config_schema._AGENT_ID, "agent"),
        (config_schema._MCP_SERVER_ID, "mcps"),
    ):
        assert compiled.pattern == id_pattern(prefix)
