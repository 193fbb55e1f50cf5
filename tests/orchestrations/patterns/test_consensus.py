from tests.orchestrations.patterns.conftest import Reply, agent

VOTERS = [agent(f"judge{i}", name=f"Judge {i}", outputs=["verdict", "reason"]) for i in (1, 2, 3)]
SPLIT = {
    "judge1": {"verdict": "approve", "reason": "sound"},
    "judge2": {"verdict": "Approve ", "reason": "fine"},
    "judge3": {"verdict": "reject", "reason": "risky"},
}


async def test_consensus_majority_decides_a_two_to_one_split(orchestra):
    result = await orchestra.run("consensus", VOTERS, SPLIT)

    assert result.output == {
        "decision": "approve",
        "reached": True,
        "votes": {"Judge 1": "approve", "Judge 2": "Approve ", "Judge 3": "reject"},
        "tally": {"approve": 2, "reject": 1},
    }
    assert orchestra.recorder.steps() == [
        {"step": "tally", "tally": {"approve": 2, "reject": 1}, "decision": "approve", "reached": True}
    ]
    assert {step for _, step in orchestra.call_steps()} == {"consensus.vote"}


async def test_consensus_unanimous_is_not_reached_by_a_split(orchestra):
    result = await orchestra.run("consensus", VOTERS, SPLIT, config={"threshold": "unanimous"})

    assert (result.output["decision"], result.output["reached"]) == (None, False)


async def test_consensus_voters_vote_concurrently_on_the_first_output_field(orchestra):
    script = {voter.agent_id: Reply({"verdict": "yes"}, sleep=0.1) for voter in VOTERS}

    result = await orchestra.run("consensus", VOTERS, script)

    assert orchestra.agents.peak == 3
    assert result.output["tally"] == {"yes": 3}
    assert all(call.spec.extra_outputs == () for call in orchestra.agents.calls)  # `verdict` is declared


async def test_consensus_asks_for_a_decision_field_the_voters_do_not_declare(orchestra):
    voters = [agent(f"v{i}") for i in range(3)]
    script = {"v0": {"vote": "blue"}, "v1": {"vote": "blue"}, "v2": {"vote": "red"}}

    result = await orchestra.run("consensus", voters, script, config={"decision_field": "vote"})

    assert result.output["decision"] == "blue"
    assert [f["name"] for f in orchestra.agents.calls[0].spec.extra_outputs] == ["vote"]
