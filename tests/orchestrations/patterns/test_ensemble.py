from tests.orchestrations.patterns.conftest import Reply, agent, fail

EXPERTS = [agent("physicist", name="Physicist"), agent("poet", name="Poet")]
SYNTHESIZER = agent("editor", name="Editor")


async def test_ensemble_experts_answer_concurrently_and_the_last_agent_synthesizes(orchestra):
    script = {
        "physicist": Reply({"answer": "Rayleigh scattering"}, sleep=0.2),
        "poet": Reply({"answer": "the sky borrows the sea"}, sleep=0.2),
        "editor": {"answer": "Scattering, poetically put."},
    }

    result = await orchestra.run(
        "ensemble", [*EXPERTS, SYNTHESIZER], script, config={"synthesis_prompt": "Prefer the physics."}
    )

    assert result.output == {
        "output": {"answer": "Scattering, poetically put."},
        "answers": {
            "Physicist": {"answer": "Rayleigh scattering"},
            "Poet": {"answer": "the sky borrows the sea"},
        },
    }
    assert orchestra.agents.peak == 2
    synthesis = orchestra.calls_of("editor")[0]
    assert synthesis.spec.role_instructions == "Prefer the physics."
    assert "Rayleigh scattering" in synthesis.inputs["question"]
    assert "the sky borrows the sea" in synthesis.inputs["question"]
    assert orchestra.call_steps() == [
        ("physicist", "ensemble.answer"),
        ("poet", "ensemble.answer"),
        ("editor", "ensemble.synthesize"),
    ]
    assert orchestra.recorder.steps() == [{"step": "synthesize", "experts": ["Physicist", "Poet"]}]


async def test_ensemble_continue_synthesizes_the_answers_there_are(orchestra):
    script = {"poet": fail("poet is blocked")}

    result = await orchestra.run(
        "ensemble", [*EXPERTS, SYNTHESIZER], script, config={"on_agent_error": "continue"}
    )

    assert list(result.output["answers"]) == ["Physicist"]
    assert result.output["errors"] == {"Poet": "poet is blocked"}
    assert result.agents_executed == ["physicist", "poet", "editor"]
