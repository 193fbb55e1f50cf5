"""Runs resume instead of dying: a process executing a run is SIGKILLed mid-run, and `run_resume`
continues the run where it was. The agents answer over the fake OpenAI server, which counts the
calls: every agent call that finished is reused from the ledger (not called or paid again), only
the call in flight is made again (its budget hold released first), the events go on from the next
seq, and the spans tell what happened. A run whose every attempt dies fails after the bound."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from agents.runs import agent_inputs_check
from observability.limits import run_admit
from observability.models import Run, Span
from observability.replay import ATTEMPTS_EXHAUSTED, run_resume
from observability.supervisor import RunDraft, RunFailed, RunHandedBack, run_execute, run_hand_back
from orchestrations.runs import orchestration_inputs_check, orchestration_spec
from providers.aio import run_sync
from providers.models import BudgetCounter
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.fakes.behaviours import delay, json_answer
from tests.observability.resume_child import resume_child, run_work
from tests.orchestrations.helpers import event_types, make_agent, make_orchestration, stored_events
from tests.providers.factories import make_provider_config

# Each test starts Django in a child process or two: slow on a loaded machine.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(400)]

IN_FLIGHT_S = 60  # a call held this long is in flight when its process is killed
REMOTE = {"provider": "openai_compatible", "model": "gpt-4o-mini"}


@pytest.fixture
def team(member, fake_openai, settings):
    """Agents named by their system prompt on the fake server, through a provider with a budget."""
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    org = member.organization
    provider = make_provider_config(org, api_base_url=fake_openai.base_url, is_default=True, budget="5")

    def agents(*names):
        return [make_agent(org, name, system_prompt=f"You are {name}.", **REMOTE) for name in names]

    agents.provider = provider
    return agents


def stored_run(member, orchestration, inputs) -> Run:
    spec = orchestration_spec(orchestration)
    draft = RunDraft(
        organization_id=member.organization_id,
        user_id=member.pk,
        kind=Run.Kind.ORCHESTRATION,
        input=orchestration_inputs_check(spec, inputs),
        orchestration_id=orchestration.pk,
    )
    return run_admit(draft)


def stored_agent_run(member, agent, inputs) -> Run:
    draft = RunDraft(
        organization_id=member.organization_id,
        user_id=member.pk,
        kind=Run.Kind.AGENT_TEST,
        input=agent_inputs_check(agent, inputs),
        agent_id=agent.pk,
    )
    return run_admit(draft)


def wait_for(condition, *, what: str, within_s: float = 120):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {within_s} s: {what}")


def killed_mid_run(
    run: Run, fake_openai, *, finished_calls: int, mode: str = "execute", attempt: int = 1
) -> None:
    """Executes (or resumes) the run in a child process and SIGKILLs it once its `attempt` is
    under way, `finished_calls` agent calls ended and one more is in flight: its LLM call open,
    its budget held, its request at the fake server."""
    asked_before = len(fake_openai.requests)
    child = resume_child(run.pk, mode=mode)
    try:

        def in_flight() -> bool:
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            agents = Span.objects.filter(run=run, kind="agent")
            return (
                Run.objects.get(pk=run.pk).attempts == attempt
                and agents.filter(status="completed").count() >= finished_calls
                and Span.objects.filter(run=run, kind="llm", ended_at__isnull=True).exists()
                and len(fake_openai.requests) > asked_before + finished_calls
            )

        wait_for(in_flight, what=f"{finished_calls} calls finished and one in flight")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stderr.close()
    assert Run.objects.get(pk=run.pk).status == "running"


def asked(fake_openai) -> list[str]:
    """Which agent each request to the fake server came from, in order."""
    return [
        request.json["messages"][0]["content"].split(".")[0].removeprefix("You are ")
        for request in fake_openai.requests
    ]


def resume(run: Run):
    work, name = run_work(Run.objects.get(pk=run.pk))
    return run_sync(run_resume, run, work, name=name)


def assert_paid_once_per_call(run: Run, provider) -> dict[str, list[Span]]:
    """The run's totals are its completed LLM calls' (the interrupted one cost nothing), its budget
    counter spent exactly that and holds nothing, and no span is left open."""
    spans: dict[str, list[Span]] = {}
    for span in Span.objects.filter(run=run):
        spans.setdefault(span.kind, []).append(span)
    assert not [span for kind in spans.values() for span in kind if span.ended_at is None]
    paid = [span for span in spans["llm"] if span.status == "completed"]
    assert run.cost_usd == sum((span.cost_usd for span in paid), Decimal(0)) > 0
    assert run.input_tokens == sum(span.input_tokens for span in paid)
    counter = BudgetCounter.objects.get(subject=provider.pk)
    assert (counter.spent_usd, counter.reserved_usd) == (run.cost_usd, Decimal(0))
    interrupted = [span for span in spans["llm"] if span.status == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].cost_usd == 0 and interrupted[0].budget_holds == []
    (root,) = spans["run"]
    assert (root.status, root.cost_usd) == ("completed", run.cost_usd)
    return spans


def test_a_sequential_run_killed_in_its_third_agent_resumes_without_calling_the_first_two(
    member, team, fake_openai
):
    writer, editor, summarizer = team("Writer", "Editor", "Summarizer")
    run = stored_run(
        member,
        make_orchestration(member.organization, "sequential", [writer, editor, summarizer]),
        {"text": "Refunds"},
    )
    fake_openai.enqueue(
        json_answer({"answer": "draft"}),
        json_answer({"answer": "edited"}),
        delay(IN_FLIGHT_S, json_answer({"answer": "lost"})),
    )
    killed_mid_run(run, fake_openai, finished_calls=2)
    assert BudgetCounter.objects.get(subject=team.provider.pk).reserved_usd > 0  # the call in flight

    fake_openai.enqueue(json_answer({"answer": "summary"}))
    resumed, outcome = resume(run)

    assert asked(fake_openai) == ["Writer", "Editor", "Summarizer", "Summarizer"]
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.attempts) == ("completed", 2)
    assert run.output == {
        "output": {"answer": "summary"},
        "steps": [
            {"agent": "Writer", "output": {"answer": "draft"}},
            {"agent": "Editor", "output": {"answer": "edited"}},
            {"agent": "Summarizer", "output": {"answer": "summary"}},
        ],
    }
    assert outcome.cost_usd == run.cost_usd
    events = stored_events(run.pk)  # seq 1, 2, 3, ... without a gap or a repeat
    assert event_types(events) == [
        "run.started",
        *["pattern.step", "agent.started", "agent.completed"] * 2,
        "pattern.step",
        "agent.started",  # the Summarizer's call the process died in
        "run.resumed",
        "agent.started",
        "agent.completed",
        "run.completed",
    ]
    assert events[-4].data == {"attempt": 2, "replayed_calls": 2, "interrupted_calls": 1}
    assert events[-1].data["agents_executed"] == [writer.pk, editor.pk, summarizer.pk]

    spans = assert_paid_once_per_call(run, team.provider)
    assert (
        sorted((span.name, span.status) for span in spans["pattern"])
        == [("sequential.step", "completed")] * 3
    )
    agent_spans = sorted((span.agent_id, span.status) for span in spans["agent"])
    assert agent_spans == sorted(
        [
            (writer.pk, "completed"),
            (editor.pk, "completed"),
            (summarizer.pk, "interrupted"),
            (summarizer.pk, "completed"),
        ]
    )


def test_a_parallel_run_killed_with_one_agent_in_flight_makes_only_that_call_again(member, team, fake_openai):
    agents = team("Alpha", "Beta", "Gamma")
    run = stored_run(member, make_orchestration(member.organization, "parallel", agents), {"text": "Go"})
    fake_openai.enqueue(
        json_answer({"answer": "first"}),
        json_answer({"answer": "second"}),
        delay(IN_FLIGHT_S, json_answer({"answer": "lost"})),
    )
    killed_mid_run(run, fake_openai, finished_calls=2)
    (in_flight,) = Span.objects.filter(run=run, kind="agent", ended_at__isnull=True)
    name = next(agent.name for agent in agents if agent.pk == in_flight.agent_id)

    fake_openai.enqueue(json_answer({"answer": "third"}))
    resume(run)

    calls = asked(fake_openai)
    assert len(calls) == 4 and calls[-1] == name
    assert sorted(calls) == sorted(["Alpha", "Beta", "Gamma", name])
    run = Run.objects.get(pk=run.pk)
    assert run.status == "completed"
    outputs = run.output["outputs"]
    assert outputs[name] == {"answer": "third"}
    assert sorted(output["answer"] for output in outputs.values()) == ["first", "second", "third"]
    types = event_types(stored_events(run.pk))
    assert types.count("pattern.step") == 1 and types.count("agent.completed") == 3
    assert types[types.index("run.resumed") :] == [
        "run.resumed",
        "agent.started",
        "agent.completed",
        "run.completed",
    ]
    spans = assert_paid_once_per_call(run, team.provider)
    assert [(span.name, span.status) for span in spans["pattern"]] == [("parallel.fan_out", "completed")]


def test_a_supervisor_run_killed_while_a_worker_works_plans_and_combines_once(member, team, fake_openai):
    lead, researcher, writer = team("Lead", "Researcher", "Writer")
    orchestration = make_orchestration(member.organization, "supervisor_worker", [lead, researcher, writer])
    run = stored_run(member, orchestration, {"text": "A memo"})
    subtasks = [{"worker": "Researcher", "task": "find sources"}, {"worker": "Writer", "task": "draft it"}]
    fake_openai.enqueue(
        json_answer({"answer": "the plan", "subtasks": subtasks}),
        json_answer({"answer": "a worker's part"}),
        delay(IN_FLIGHT_S, json_answer({"answer": "lost"})),
    )
    killed_mid_run(run, fake_openai, finished_calls=2)  # the plan and one worker
    (in_flight,) = Span.objects.filter(run=run, kind="agent", ended_at__isnull=True)
    name = "Researcher" if in_flight.agent_id == researcher.pk else "Writer"

    fake_openai.enqueue(json_answer({"answer": "the other part"}), json_answer({"answer": "combined"}))
    resume(run)

    calls = asked(fake_openai)
    assert calls[0] == "Lead" and calls[-2:] == [name, "Lead"] and len(calls) == 5
    assert calls.count("Lead") == 2  # one plan, one combination: the plan is not asked again
    run = Run.objects.get(pk=run.pk)
    assert run.status == "completed" and run.output["output"] == {"answer": "combined"}
    done = {entry["worker"]: entry["output"]["answer"] for entry in run.output["subtasks"]}
    assert done[name] == "the other part" and len(done) == 2
    types = event_types(stored_events(run.pk))
    assert types.count("pattern.step") == 1  # the plan's, not emitted again by the replay
    spans = assert_paid_once_per_call(run, team.provider)
    assert sorted(span.name for span in spans["pattern"]) == [
        "supervisor_worker.combine",
        "supervisor_worker.plan",
        "supervisor_worker.work",
    ]


async def test_a_follower_of_the_run_stream_sees_one_unbroken_run_across_the_resume(
    member, team, fake_openai, llm_clients_closed
):
    writer, editor = await sync_to_async(team)("Writer", "Editor")
    orchestration = await sync_to_async(make_orchestration)(
        member.organization, "sequential", [writer, editor]
    )
    run = await sync_to_async(stored_run)(member, orchestration, {"text": "Refunds"})
    fake_openai.enqueue(json_answer({"answer": "draft"}), delay(IN_FLIGHT_S))
    await sync_to_async(killed_mid_run)(run, fake_openai, finished_calls=1)

    follower, connected, _ = await open_communicator(f"/api/runs/{run.pk}/stream", user=member)
    assert connected
    fake_openai.enqueue(json_answer({"answer": "edited"}))
    work, name = await sync_to_async(run_work)(run)
    resuming = asyncio.create_task(run_resume(run, work, name=name))
    frames = []
    while not frames or frames[-1]["type"] != "run.completed":
        frames.append(await follower.receive_json_from(timeout=60))
    await resuming

    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    assert [frame["type"] for frame in frames] == [
        "run.started",
        *["pattern.step", "agent.started", "agent.completed"],
        *["pattern.step", "agent.started"],  # stored by the process that died
        "run.resumed",  # live from here on
        *["agent.started", "agent.completed"],
        "run.completed",
    ]
    assert frames[-1]["data"]["output"]["output"] == {"answer": "edited"}


async def test_a_run_handed_back_at_shutdown_resumes_from_its_finished_calls(
    member, team, fake_openai, llm_clients_closed
):
    writer, editor = await sync_to_async(team)("Writer", "Editor")
    orchestration = await sync_to_async(make_orchestration)(
        member.organization, "sequential", [writer, editor]
    )
    run = await sync_to_async(stored_run)(member, orchestration, {"text": "Refunds"})
    fake_openai.enqueue(json_answer({"answer": "draft"}), delay(IN_FLIGHT_S))
    work, name = await sync_to_async(run_work)(run)
    executing = asyncio.create_task(run_execute(run, work, name=name))
    while len(fake_openai.requests) < 2:  # the Editor's call is in flight
        await asyncio.sleep(0.05)

    assert run_hand_back(run.pk)  # a worker shutting down: the run goes back to the queue
    with pytest.raises(RunHandedBack):
        await executing
    assert (await Run.objects.aget(pk=run.pk)).status == "queued"
    fake_openai.enqueue(json_answer({"answer": "edited"}))
    await run_resume(await Run.objects.aget(pk=run.pk), work, name=name)

    assert asked(fake_openai) == ["Writer", "Editor", "Editor"]
    run = await Run.objects.aget(pk=run.pk)
    assert (run.status, run.attempts, run.output["output"]) == ("completed", 2, {"answer": "edited"})
    events = await sync_to_async(stored_events)(run.pk)
    types = event_types(events)
    assert types.count("pattern.step") == 2 and types.count("run.started") == 1
    assert types[types.index("run.resumed") - 1] == "agent.failed"  # the Editor's call, cancelled
    steps = [span async for span in Span.objects.filter(run=run, kind="pattern").order_by("started_at")]
    assert [(span.call_key, span.status) for span in steps] == [
        ("1.step", "completed"),
        ("2.step", "cancelled"),  # stopped by the hand-back
        ("2.step", "completed"),  # entered again by the resumed run
    ]
    counter = await BudgetCounter.objects.aget(subject=team.provider.pk)
    assert (counter.spent_usd, counter.reserved_usd) == (run.cost_usd, Decimal(0))


def test_an_agent_run_killed_in_its_call_makes_it_once_more(member, team, fake_openai):
    (solo,) = team("Solo")
    run = stored_agent_run(member, solo, {"text": "Hi"})
    fake_openai.enqueue(delay(IN_FLIGHT_S))
    killed_mid_run(run, fake_openai, finished_calls=0)

    fake_openai.enqueue(json_answer({"answer": "hello"}))
    resume(run)

    assert asked(fake_openai) == ["Solo", "Solo"]
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.output, run.attempts) == ("completed", {"answer": "hello"}, 2)
    types = event_types(stored_events(run.pk))
    assert types == [
        "run.started",
        "agent.started",
        "run.resumed",
        "agent.started",
        "agent.completed",
        "run.completed",
    ]
    spans = assert_paid_once_per_call(run, team.provider)
    assert sorted(span.status for span in spans["agent"]) == ["completed", "interrupted"]


def test_a_run_killed_on_every_attempt_fails_after_the_bound_with_the_reason(
    member, team, fake_openai, settings
):
    settings.RUN_MAX_ATTEMPTS = 2
    (solo,) = team("Solo")
    other = team("Other")[0]
    run = stored_run(
        member, make_orchestration(member.organization, "sequential", [solo, other]), {"text": "x"}
    )
    for attempt, mode in enumerate(("execute", "resume"), start=1):  # both executions allowed die
        fake_openai.enqueue(delay(IN_FLIGHT_S))
        killed_mid_run(run, fake_openai, finished_calls=0, mode=mode, attempt=attempt)
    assert Run.objects.get(pk=run.pk).attempts == 2

    with pytest.raises(RunFailed) as failed:
        resume(run)

    assert failed.value.code == ATTEMPTS_EXHAUSTED
    assert asked(fake_openai) == ["Solo", "Solo"]  # not a third time
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.error["code"], run.attempts) == ("failed", ATTEMPTS_EXHAUSTED, 2)
    assert "2 attempts" in run.error["message"]
    events = stored_events(run.pk)
    assert events[-1].type == "run.failed" and events[-1].data["error"]["code"] == ATTEMPTS_EXHAUSTED
    assert event_types(events).count("run.resumed") == 1
    assert not Span.objects.filter(run=run, ended_at__isnull=True).exists()
    counter = BudgetCounter.objects.get(subject=team.provider.pk)
    assert (counter.spent_usd, counter.reserved_usd) == (Decimal(0), Decimal(0))


def test_resuming_a_run_that_never_started_executes_it_and_a_finished_one_is_left_alone(
    member, team, fake_openai
):
    agents = team("One", "Two")
    run = stored_run(member, make_orchestration(member.organization, "sequential", agents), {"text": "x"})

    started, outcome = resume(run)
    assert outcome is not None and Run.objects.get(pk=run.pk).attempts == 1
    assert len(fake_openai.requests) == 2

    finished, nothing = resume(run)
    assert nothing is None and finished.status == "completed"
    assert len(fake_openai.requests) == 2
    assert event_types(stored_events(run.pk)).count("run.completed") == 1
