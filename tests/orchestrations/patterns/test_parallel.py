import time

from tests.orchestrations.patterns.conftest import Reply, agent


async def test_parallel_runs_all_agents_at_once(orchestra):
    agents = [agent(f"a{i}") for i in range(5)]
    script = {f"a{i}": Reply({"answer": f"answer {i}"}, sleep=1.0) for i in range(5)}

    started = time.perf_counter()
    result = await orchestra.run("parallel", agents, script)
    elapsed = time.perf_counter() - started

    assert elapsed < 3  # one after another would take 5 s
    assert orchestra.agents.peak == 5
    assert result.output == {"outputs": {f"a{i}": {"answer": f"answer {i}"} for i in range(5)}}
    assert result.agents_executed == ["a0", "a1", "a2", "a3", "a4"]


async def test_parallel_keys_outputs_by_unique_agent_names(orchestra):
    agents = [agent("w1", name="Writer"), agent("w2", name="Writer"), agent("critic", name="Critic")]
    script = {"w1": {"answer": "one"}, "w2": {"answer": "two"}, "critic": {"answer": "meh"}}

    result = await orchestra.run("parallel", agents, script)

    assert result.output["outputs"] == {
        "Writer": {"answer": "one"},
        "Writer (2)": {"answer": "two"},
        "Critic": {"answer": "meh"},
    }


async def test_parallel_max_concurrency_limits_the_calls_running_at_once(orchestra):
    agents = [agent(f"a{i}") for i in range(4)]
    script = {f"a{i}": Reply({"answer": "ok"}, sleep=0.05) for i in range(4)}

    result = await orchestra.run("parallel", agents, script, config={"max_concurrency": 2})

    assert orchestra.agents.peak == 2
    assert len(result.output["outputs"]) == 4


async def test_parallel_calls_hang_off_one_fan_out_step(orchestra):
    await orchestra.run("parallel", [agent("a"), agent("b")])

    assert orchestra.call_steps() == [("a", "parallel.fan_out"), ("b", "parallel.fan_out")]
    assert orchestra.recorder.steps() == [{"step": "fan_out", "agents": ["a", "b"]}]
