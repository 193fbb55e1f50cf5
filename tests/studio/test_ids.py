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
