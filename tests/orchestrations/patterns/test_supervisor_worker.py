import pytest

from agents.runtime.schema import signature_json_schema
from orchestrations.patterns.base import OrchestrationError
from tests.orchestrations.patterns.conftest import Reply, agent

SUPERVISOR = agent("lead", name="Lead")
RESEARCHER = agent("researcher", name="Researcher", description="Finds sources and facts", inputs=["task"])
WRITER = agent("writer", name="Writer", description="Writes clear prose")
TEAM = [SUPERVISOR, RESEARCHER, WRITER]


def plan(*subtasks):
    return {"subtasks": list(subtasks)}


async def test_supervisor_assigns_subtasks_by_description_and_combines_the_results(orchestra):
    script = {
        "lead": [
            plan(
                {"worker": "Writer", "task": "draft the intro"},
                {"worker": "Researcher", "task": "find sources"},
            ),
            {"answer": "the combined report"},
        ],
        "writer": Reply({"answer": "an intro"}, sleep=0.2),
        "researcher": Reply({"answer": "three sources"}, sleep=0.2),
    }

    result = await orchestra.run("supervisor_worker", TEAM, script)

    assert result.output == {
        "output": {"answer": "the combined report"},
        "subtasks": [
            {"worker": "Writer", "task": "draft the intro", "output": {"answer": "an intro"}},
            {"worker": "Researcher", "task": "find sources", "output": {"answer": "three sources"}},
        ],
    }
    assert orchestra.agents.peak == 2  # the workers ran at the same time
    assert result.agents_executed == ["lead", "writer", "researcher", "lead"]
    assert orchestra.call_steps() == [
        ("lead", "supervisor_worker.plan"),
        ("writer", "supervisor_worker.work"),
        ("researcher", "supervisor_worker.work"),
        ("lead", "supervisor_worker.combine"),
    ]
    assert orchestra.recorder.steps() == [
        {
            "step": "plan",
            "mode": "semantic",
            "assignments": [
                {"worker": "Writer", "task": "draft the intro"},
                {"worker": "Researcher", "task": "find sources"},
            ],
            "dropped": 0,
        }
    ]


async def test_supervisor_plans_with_the_workers_descriptions_and_workers_get_their_subtask(orchestra):
    script = {"lead": [plan({"worker": "Researcher", "task": "find sources"}), {"answer": "done"}]}

    await orchestra.run("supervisor_worker", TEAM, script)

    planning, combining = orchestra.calls_of("lead")
    assert "- Researcher: Finds sources and facts" in planning.spec.role_instructions
    assert [f["name"] for f in planning.spec.extra_outputs] == ["subtasks"]
    assert orchestra.calls_of("researcher")[0].inputs == {"task": "find sources"}
    assert "researcher says" in combining.inputs["question"]
    assert combining.spec.extra_outputs == ()


async def test_round_robin_hands_the_subtasks_to_the_workers_in_turn(orchestra):
    script = {"lead": [plan("part one", "part two", "part three"), {"answer": "done"}]}

    config = {"routing": {"mode": "round_robin"}}

    result = await orchestra.run("supervisor_worker", TEAM, script, config=config)

    assert [(s["worker"], s["task"]) for s in result.output["subtasks"]] == [
        ("Researcher", "part one"),
        ("Writer", "part two"),
        ("Researcher", "part three"),
    ]
    assert "Finds sources" not in orchestra.calls_of("lead")[0].spec.role_instructions


async def test_supervisor_drops_unknown_workers_and_subtasks_beyond_the_limit(orchestra):
    script = {
        "lead": [
            plan(
                {"worker": "Intern", "task": "make coffee"},
                {"worker": "Writer", "task": "one"},
                {"worker": "Writer", "task": "two"},
                {"worker": "Researcher", "task": "three"},
            ),
            {"answer": "done"},
        ]
    }

    result = await orchestra.run("supervisor_worker", TEAM, script, config={"max_subtasks": 2})

    assert [s["task"] for s in result.output["subtasks"]] == ["one", "two"]
    assert orchestra.recorder.steps()[0]["dropped"] == 2


async def test_supervisor_that_assigns_nothing_fails_the_run_with_its_answer_on_the_plan_span(orchestra):
    answer = plan({"worker": "Intern", "task": "make coffee"})

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("supervisor_worker", TEAM, {"lead": answer})

    # The model answered: not a 502, which would read like a provider outage.
    assert (failure.value.code, failure.value.status) == ("invalid_plan", 422)
    assert "Researcher, Writer" in failure.value.message
    assert orchestra.agents.ids() == ["lead"]
    (plan_span,) = orchestra.recorder.of_kind("pattern")
    assert (plan_span["name"], plan_span["status"]) == ("supervisor_worker.plan", "failed")
    assert plan_span["attributes"] == {"mode": "semantic", "plan": answer}
    assert plan_span["error"] == failure.value.message


def plan_schema(orchestra) -> dict:
    """The JSON Schema the supervisor's plan was asked for."""
    (subtasks,) = orchestra.calls_of("lead")[0].spec.extra_outputs
    return signature_json_schema([subtasks])["properties"]["subtasks"]


async def test_the_semantic_plan_schema_allows_only_the_real_workers(orchestra):
    script = {"lead": [plan({"worker": "Writer", "task": "t"}), {"answer": "ok"}]}

    await orchestra.run("supervisor_worker", TEAM, script)

    items = plan_schema(orchestra)["items"]
    assert items["properties"]["worker"]["enum"] == ["Researcher", "Writer"]
    assert items["required"] == ["worker", "task"]


async def test_the_round_robin_plan_schema_asks_for_text_subtasks(orchestra):
    script = {"lead": [plan("t"), {"answer": "ok"}]}

    await orchestra.run("supervisor_worker", TEAM, script, config={"routing": {"mode": "round_robin"}})

    assert plan_schema(orchestra)["items"] == {"type": "string", "minLength": 1}
