from decimal import Decimal

import pytest

from orchestrations.patterns.base import OrchestrationError
from tests.orchestrations.patterns.conftest import agent, fail

WRITER = agent("writer", inputs=["question"], outputs=["draft"])
EDITOR = agent("editor", inputs=["draft"], outputs=["text"])
TRANSLATOR = agent("translator", inputs=["source"], outputs=["translation"])
SCRIPT = {
    "writer": {"draft": "first draft"},
    "editor": {"text": "edited text"},
    "translator": {"translation": "texte"},
}


async def test_sequential_feeds_each_output_to_the_next_agent(orchestra):
    result = await orchestra.run("sequential", [WRITER, EDITOR, TRANSLATOR], SCRIPT)

    assert [call.inputs for call in orchestra.agents.calls] == [
        {"question": "Why is the sky blue?"},
        {"draft": "first draft"},  # matched by field name
        {"source": "edited text"},  # no name matches: the previous text goes into the first input
    ]
    assert result.output == {
        "output": {"translation": "texte"},
        "steps": [
            {"agent": "writer", "output": {"draft": "first draft"}},
            {"agent": "editor", "output": {"text": "edited text"}},
            {"agent": "translator", "output": {"translation": "texte"}},
        ],
    }
    assert result.agents_executed == ["writer", "editor", "translator"]
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (30, 15, Decimal("0.03"))


async def test_sequential_runs_each_agent_in_its_own_step_span_and_announces_it(orchestra):
    await orchestra.run("sequential", [WRITER, EDITOR], SCRIPT)

    assert orchestra.call_steps() == [("writer", "sequential.step"), ("editor", "sequential.step")]
    assert len({call.parent_span_id for call in orchestra.agents.calls}) == 2
    assert orchestra.recorder.steps() == [
        {"step": "step", "position": 1, "agent": "writer"},
        {"step": "step", "position": 2, "agent": "editor"},
    ]


async def test_sequential_mapping_names_each_input_explicitly(orchestra):
    reviewer = agent("reviewer", inputs=["notes", "topic"], outputs=["review"])
    config = {"mapping": [None, {"notes": "draft", "topic": "input.question"}]}

    await orchestra.run("sequential", [WRITER, reviewer], SCRIPT, config=config)

    (review,) = orchestra.calls_of("reviewer")
    assert review.inputs == {"notes": "first draft", "topic": "Why is the sky blue?"}


async def test_sequential_mapping_from_a_missing_field_fails(orchestra):
    config = {"mapping": [None, {"draft": "summary"}]}

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("sequential", [WRITER, EDITOR], SCRIPT, config=config)

    assert (failure.value.code, failure.value.status) == ("invalid_mapping", 400)


async def test_sequential_continue_skips_a_failed_agent(orchestra):
    script = {**SCRIPT, "writer": fail("writer is down")}

    result = await orchestra.run(
        "sequential", [WRITER, EDITOR, TRANSLATOR], script, config={"on_agent_error": "continue"}
    )

    assert orchestra.calls_of("editor")[0].inputs == {"draft": "Why is the sky blue?"}
    assert result.output["output"] == {"translation": "texte"}
    assert result.output["errors"] == {"writer": "writer is down"}
    assert result.agents_executed == ["writer", "editor", "translator"]
