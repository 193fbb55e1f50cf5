"""The CLI's argument handling (no server; test_live.py runs it against one)."""

from __future__ import annotations

import pytest

from deployments.cli import EXIT_USAGE, CliError, main, parse_inputs


def test_inputs_are_strings_unless_given_as_json():
    inputs = parse_inputs(["inquiry=3", "count:=3", 'tags:=["a"]', "note=a=b"], None)
    assert inputs == {"inquiry": "3", "count": 3, "tags": ["a"], "note": "a=b"}


def test_pairs_override_the_json_object():
    assert parse_inputs(["a=x"], '{"a": 1, "b": true}') == {"a": "x", "b": True}


@pytest.mark.parametrize(
    "pairs, raw_json, problem",
    [
        (["no-equals"], None, "field=value"),
        (["=value"], None, "field=value"),
        (["n:=nope"], None, "not valid JSON"),
        ([], "[1, 2]", "JSON object"),
        ([], "{broken", "not valid JSON"),
    ],
)
def test_bad_inputs_are_usage_errors(pairs, raw_json, problem):
    with pytest.raises(CliError) as error:
        parse_inputs(pairs, raw_json)
    assert error.value.exit_code == EXIT_USAGE and problem in error.value.message


def test_a_missing_key_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("STUDIO_API_KEY", raising=False)
    assert main(["execute", "bot", "--url", "http://127.0.0.1:9", "-i", "a=b"]) == EXIT_USAGE
    assert "deployment key" in capsys.readouterr().err
