"""Schema instances derived from an input text: deterministic, and valid against the schema."""

from __future__ import annotations

from providers.llm.schema_sample import sample_for_schema, snippet


def test_strings_name_their_field_and_quote_the_input():
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}

    assert sample_for_schema(schema, "  Fix   the\nbilling bug ") == {"title": "title: Fix the billing bug"}


def test_string_length_limits_are_kept():
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "maxLength": 4},
            "essay": {"type": "string", "minLength": 40},
        },
    }

    sample = sample_for_schema(schema, "x")

    assert len(sample["code"]) == 4
    assert len(sample["essay"]) == 40


def test_numbers_respect_their_bounds():
    schema = {
        "type": "object",
        "properties": {
            "stars": {"type": "integer", "minimum": 3, "maximum": 5},
            "ratio": {"type": "number", "maximum": 0.5},
        },
    }

    assert sample_for_schema(schema, "x") == {"stars": 3, "ratio": 0.5}


def test_arrays_hold_at_least_one_and_at_most_max_items():
    schema = {
        "type": "object",
        "properties": {
            "pair": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "none": {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
        },
    }

    assert sample_for_schema(schema, "x") == {"pair": [1, 1], "none": []}


def test_const_enum_and_combinators_pick_their_first_option():
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "ticket"},
            "mood": {"enum": ["calm", "angry"]},
            "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        },
        "required": ["kind", "mood", "either", "undeclared"],
    }

    assert sample_for_schema(schema, "x") == {
        "kind": "ticket",
        "mood": "calm",
        "either": True,
        "undeclared": "undeclared: x",
    }


def test_snippets_are_cut_with_an_ellipsis():
    assert snippet("a" * 100, limit=10) == "aaaaaaa..."
