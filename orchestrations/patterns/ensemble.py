"""Ensemble: all agents but the last (the experts) answer the input concurrently; the last agent
(the synthesizer) combines their answers, guided by `synthesis_prompt`.

Output: {"output": the synthesizer's output, "answers": {expert name: output}}
Events: pattern.step {"step": "synthesize", "experts": [names of the experts who answered]}
"""

from __future__ import annotations

from agents.runtime.validation import Key, string
from orchestrations.patterns.base import Output, Pattern, PatternRun, inputs_from, inputs_with_brief

DEFAULT_SYNTHESIS = (
    "Several experts answered the same input (see `answers`). Synthesize one answer that keeps what "
    "is right in each of theirs and resolves where they disagree."
)


async def execute(run: PatternRun) -> Output:
    experts = range(len(run.agents) - 1)
    synthesizer = len(run.agents) - 1
    async with run.step("answer") as step:
        outputs = await run.call_all(
            run.call(step, p, inputs_from(run.agents[p], run.inputs)) for p in experts
        )
    answers = run.by_name(experts, outputs)
    await run.emit_step("synthesize", experts=list(answers))
    async with run.step("synthesize") as step:
        output = await run.call(
            step,
            synthesizer,
            inputs_with_brief(run.agents[synthesizer], {"input": run.inputs, "answers": answers}, run.inputs),
            instructions=run.config["synthesis_prompt"] or DEFAULT_SYNTHESIS,
            essential=True,
        )
    return {"output": output, "answers": answers}


PATTERN = Pattern(
    id="ensemble",
    name="Ensemble",
    description="All agents but the last answer the input concurrently; the last synthesizes their answers.",
    min_agents=3,
    max_agents=10,
    roles=("expert", "...", "synthesizer"),
    execute=execute,
    options={"synthesis_prompt": Key(string(max_length=8000, non_empty=True), None)},
)
