from tests.orchestrations.patterns.conftest import agent

CONTROLLER = agent("chair", name="Chair")
CONTRIBUTORS = [agent("facts", name="Facts"), agent("style", name="Style")]


async def test_blackboard_stops_when_the_controller_says_done(orchestra):
    script = {
        "chair": [{"answer": "needs sources", "done": False}, {"answer": "final answer", "done": True}],
        "facts": [{"answer": "fact 1"}, {"answer": "fact 2"}],
        "style": [{"answer": "style 1"}, {"answer": "style 2"}],
    }

    result = await orchestra.run("blackboard", [CONTROLLER, *CONTRIBUTORS], script)

    assert result.output == {
        "output": {"answer": "final answer", "done": True},
        "blackboard": {"Facts": {"answer": "fact 2"}, "Style": {"answer": "style 2"}},
        "iterations": 2,
        "done": True,
    }
    assert result.agents_executed == ["facts", "style", "chair", "facts", "style", "chair"]
    assert orchestra.recorder.steps() == [
        {"step": "iteration", "iteration": 1, "contributors": ["Facts", "Style"], "done": False},
        {"step": "iteration", "iteration": 2, "contributors": ["Facts", "Style"], "done": True},
    ]
    assert [name for _, name in orchestra.call_steps()] == ["blackboard.iteration"] * 6


async def test_blackboard_contributors_see_the_board_and_the_controllers_review(orchestra):
    script = {"chair": [{"answer": "needs sources", "done": False}, {"answer": "ok", "done": True}]}

    await orchestra.run("blackboard", [CONTROLLER, *CONTRIBUTORS], script)

    first, second = (call.inputs["question"] for call in orchestra.calls_of("facts"))
    assert "needs sources" not in first
    assert "needs sources" in second and "style says" in second
    assert "facts says" in orchestra.calls_of("chair")[0].inputs["question"]


async def test_blackboard_stops_after_max_iterations(orchestra):
    script = {"chair": {"answer": "not yet", "done": False}}

    result = await orchestra.run(
        "blackboard", [CONTROLLER, *CONTRIBUTORS], script, config={"max_iterations": 3}
    )

    assert (result.output["iterations"], result.output["done"]) == (3, False)
    assert len(orchestra.agents.calls) == 9
