from tests.orchestrations.patterns.conftest import agent

PRO = agent("pro", name="Pro")
CON = agent("con", name="Con")
JUDGE = agent("judge", name="Judge", outputs=["ruling"])
SCRIPT = {
    "pro": [{"answer": "pro opening"}, {"answer": "pro rebuttal"}],
    "con": [{"answer": "con opening"}, {"answer": "con rebuttal"}],
    "judge": {"ruling": "Pro was more convincing.", "winner": "Pro"},
}


async def test_debate_runs_its_rounds_then_the_judge_gives_the_verdict(orchestra):
    result = await orchestra.run("debate", [PRO, CON, JUDGE], SCRIPT)

    assert result.output == {
        "verdict": {"ruling": "Pro was more convincing.", "winner": "Pro"},
        "winner": "Pro",
        "transcript": [
            {"round": 1, "debater": "Pro", "argument": {"answer": "pro opening"}},
            {"round": 1, "debater": "Con", "argument": {"answer": "con opening"}},
            {"round": 2, "debater": "Pro", "argument": {"answer": "pro rebuttal"}},
            {"round": 2, "debater": "Con", "argument": {"answer": "con rebuttal"}},
        ],
    }
    assert result.agents_executed == ["pro", "con", "pro", "con", "judge"]
    assert orchestra.recorder.steps() == [
        {"step": "round", "round": 1, "debaters": ["Pro", "Con"]},
        {"step": "round", "round": 2, "debaters": ["Pro", "Con"]},
        {"step": "verdict", "winner": "Pro"},
    ]


async def test_debaters_see_the_other_debaters_last_argument(orchestra):
    await orchestra.run("debate", [PRO, CON, JUDGE], SCRIPT)

    pro_round_1, pro_round_2 = (call.inputs["question"] for call in orchestra.calls_of("pro"))
    assert "con opening" not in pro_round_1
    assert "con opening" in pro_round_2
    assert "pro opening" not in pro_round_2
    judge = orchestra.calls_of("judge")[0]
    assert "con rebuttal" in judge.inputs["question"]
    assert judge.spec.extra_outputs[0]["enum_values"] == ["Pro", "Con", "draw"]


async def test_each_debate_round_is_its_own_step_span(orchestra):
    await orchestra.run("debate", [PRO, CON, JUDGE], SCRIPT, config={"rounds": 3})

    steps = orchestra.call_steps()
    assert [name for _, name in steps] == ["debate.round"] * 6 + ["debate.judge"]
    round_spans = [orchestra.recorder.spans[call.parent_span_id] for call in orchestra.agents.calls[:6]]
    assert [span["attributes"]["round"] for span in round_spans] == [1, 1, 2, 2, 3, 3]
