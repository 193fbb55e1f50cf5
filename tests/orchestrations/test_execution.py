"""Orchestrations executed for real: the pattern engine over the agent runtime, the gateway, the mock
provider (scripted answers force each pattern's interesting branch) or the fake OpenAI-compatible
server, and the ledger (runs, span trees, numbered events)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async

from observability.models import Run, RunEvent, Span
from observability.supervisor import run_cancel
from orchestrations.patterns import PATTERNS
from orchestrations.runs import orchestration_start
from providers.models import BudgetCounter
from tests.fakes.behaviours import json_answer
from tests.orchestrations.helpers import (
    agent_event_pairs_are_balanced,
    assert_span_tree,
    event_types,
    make_agent,
    make_orchestration,
    says,
    steps,
    stored_events,
)
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)


def execute(client, orchestration, inputs):
    return client.post(f"/api/orchestrations/{orchestration.pk}/execute", {"input": inputs}, format="json")


def executed(client, orchestration, inputs):
    """A successful execution's body, checked against its stored run."""
    response = execute(client, orchestration, inputs)
    assert response.status_code == 200, response.content
    body = response.json()
    run = Run.objects.get(pk=body["run_id"])
    assert (run.status, run.kind, run.orchestration_id) == ("completed", "orchestration", orchestration.pk)
    assert run.trace_id == body["trace_id"] and run.output == body["output"]
    assert body["tokens"] == {
        "input": run.input_tokens,
        "output": run.output_tokens,
        "total": run.input_tokens + run.output_tokens,
    }
    assert body["tokens"]["total"] > 0 and body["total_cost"] == float(run.cost_usd) > 0
    assert body["execution_time_ms"] == run.execution_time_ms >= 0
    return body


def ids(*agents):
    return [agent.pk for agent in agents]


def run_events(body):
    """The run's stored events (seq 1..n): run.started first, run.completed last with the output."""
    events = stored_events(body["run_id"])
    assert events[0].type == "run.started" and events[-1].type == "run.completed"
    assert events[-1].data["output"] == body["output"]
    assert events[-1].data["agents_executed"] == body["agents_executed"]
    agent_event_pairs_are_balanced(events)
    return events


def agent_spans_by_agent(spans):
    grouped = {}
    for span in spans.get("agent", []):
        grouped.setdefault(span.agent_id, []).append(span)
    return grouped


# --- the nine patterns ---------------------------------------------------------------------------


def test_sequential_feeds_each_agent_through_the_mapping_and_by_field_names(auth_client, member):
    org = member.organization
    writer = make_agent(org, "Writer", inputs=["topic"], outputs=["draft"], responses=[says(draft="D1")])
    editor = make_agent(
        org, "Editor", inputs=["draft", "audience"], outputs=["text"], responses=[says(text="Edited D1")]
    )
    summarizer = make_agent(
        org, "Summarizer", inputs=["text"], outputs=["summary"], responses=[says(summary="Short")]
    )
    orchestration = make_orchestration(
        org,
        "sequential",
        [writer, editor, summarizer],
        config_yaml="mapping: [null, {draft: draft, audience: input.audience}]\n",
    )
    body = executed(auth_client, orchestration, {"topic": "Refunds", "audience": "customers"})
    assert body["output"] == {
        "output": {"summary": "Short"},
        "steps": [
            {"agent": "Writer", "output": {"draft": "D1"}},
            {"agent": "Editor", "output": {"text": "Edited D1"}},
            {"agent": "Summarizer", "output": {"summary": "Short"}},
        ],
    }
    assert body["agents_executed"] == ids(writer, editor, summarizer)
    events = run_events(body)
    assert event_types(events) == [
        "run.started",
        *["pattern.step", "agent.started", "agent.completed"] * 3,
        "run.completed",
    ]
    inputs = [event.data["inputs"] for event in events if event.type == "agent.started"]
    assert inputs == [
        {"topic": "Refunds"},
        {"draft": "D1", "audience": "customers"},  # the explicit mapping
        {"text": "Edited D1"},  # the default rule: matching field names
    ]
    assert [(s["step"], s["position"], s["agent"]) for s in steps(events)] == [
        ("step", 1, "Writer"),
        ("step", 2, "Editor"),
        ("step", 3, "Summarizer"),
    ]
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["sequential.step"] * 3
    assert [span.agent_id for span in spans["agent"]] == body["agents_executed"]


def test_sequential_without_mapping_passes_the_previous_output_into_the_first_input(auth_client, member):
    org = member.organization
    first = make_agent(org, "First", outputs=["answer", "note"], responses=[says(answer="A", note="N")])
    second = make_agent(org, "Second", inputs=["request"], responses=[says(answer="B")])
    body = executed(auth_client, make_orchestration(org, "sequential", [first, second]), {"text": "go"})
    started = [e.data["inputs"] for e in run_events(body) if e.type == "agent.started"]
    assert started[1] == {"request": json.dumps({"answer": "A", "note": "N"}, indent=2)}
    assert body["output"]["output"] == {"answer": "B"}


def test_parallel_runs_every_agent_at_once_and_keys_outputs_by_name(auth_client, member):
    org = member.organization
    agents = [
        make_agent(org, f"Analyst {n}", responses=[says(answer=f"view {n}")], latency_ms=1000)
        for n in range(1, 6)
    ]
    orchestration = make_orchestration(org, "parallel", agents)
    started = time.perf_counter()
    body = executed(auth_client, orchestration, {"text": "Quarterly numbers"})
    wall = time.perf_counter() - started
    # Five calls of 1 s one after another would take 5 s.
    assert wall < 3, f"parallel of 5 x 1 s took {wall:.2f} s"
    assert body["output"] == {"outputs": {f"Analyst {n}": {"answer": f"view {n}"} for n in range(1, 6)}}
    assert body["agents_executed"] == ids(*agents)
    events = run_events(body)
    assert event_types(events)[:2] == ["run.started", "pattern.step"]
    assert steps(events) == [
        {"pattern": "parallel", "step": "fan_out", "agents": [f"Analyst {n}" for n in range(1, 6)]}
    ]
    assert sorted(event_types(events)[2:-1]) == ["agent.completed"] * 5 + ["agent.started"] * 5
    # All five started before the first one finished.
    assert event_types(events)[2:7] == ["agent.started"] * 5
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    (fan_out,) = spans["pattern"]
    assert fan_out.name == "parallel.fan_out"
    assert all(span.parent_id == fan_out.pk for span in spans["agent"])
    assert all(span.duration_ms >= 990 for span in spans["llm"])
    assert fan_out.duration_ms < 3000


def test_supervisor_assigns_subtasks_by_worker_name_and_combines_the_results(auth_client, member):
    org = member.organization
    plan = says(
        answer="The combined report",
        subtasks=[
            {"worker": "Writer", "task": "Write the introduction"},
            {"worker": "Researcher", "task": "Find the refund statistics"},
            {"worker": "Nobody", "task": "Dropped: names no worker"},
        ],
    )
    lead = make_agent(org, "Lead", responses=[plan])
    researcher = make_agent(
        org, "Researcher", description="Finds facts", inputs=["task"], responses=[says(answer="42% refunds")]
    )
    writer = make_agent(
        org, "Writer", description="Writes prose", inputs=["task"], responses=[says(answer="Intro text")]
    )
    orchestration = make_orchestration(org, "supervisor_worker", [lead, researcher, writer])
    body = executed(auth_client, orchestration, {"text": "A report on refunds"})
    assert body["output"] == {
        "output": {"answer": "The combined report"},
        "subtasks": [
            {"worker": "Writer", "task": "Write the introduction", "output": {"answer": "Intro text"}},
            {
                "worker": "Researcher",
                "task": "Find the refund statistics",
                "output": {"answer": "42% refunds"},
            },
        ],
    }
    assert body["agents_executed"] == ids(lead, writer, researcher, lead)
    events = run_events(body)
    assert steps(events) == [
        {
            "pattern": "supervisor_worker",
            "step": "plan",
            "mode": "semantic",
            "assignments": [
                {"worker": "Writer", "task": "Write the introduction"},
                {"worker": "Researcher", "task": "Find the refund statistics"},
            ],
            "dropped": 1,
        }
    ]
    worker_inputs = {
        e.agent_id: e.data["inputs"] for e in events if e.type == "agent.started" and e.agent_id != lead.pk
    }
    assert worker_inputs == {
        writer.pk: {"task": "Write the introduction"},
        researcher.pk: {"task": "Find the refund statistics"},
    }
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    names = [span.name for span in spans["pattern"]]
    assert names == ["supervisor_worker.plan", "supervisor_worker.work", "supervisor_worker.combine"]
    assert len(agent_spans_by_agent(spans)[lead.pk]) == 2


def test_supervisor_round_robin_hands_subtasks_to_the_workers_in_turn(auth_client, member):
    org = member.organization
    lead = make_agent(org, "Lead", responses=[says(answer="done", subtasks=["one", "two", "three"])])
    first = make_agent(org, "First", inputs=["task"])
    second = make_agent(org, "Second", inputs=["task"])
    orchestration = make_orchestration(
        org, "supervisor_worker", [lead, first, second], config_yaml="routing: {mode: round_robin}\n"
    )
    body = executed(auth_client, orchestration, {"text": "Split me"})
    assert [(s["worker"], s["task"]) for s in body["output"]["subtasks"]] == [
        ("First", "one"),
        ("Second", "two"),
        ("First", "three"),
    ]
    assert body["agents_executed"] == ids(lead, first, second, first, lead)
    # Unscripted workers answer with the mock's derived output, quoting their input.
    assert body["output"]["subtasks"][1]["output"] == {
        "answer": "answer: Inputs: task (string): The task two"
    }


def test_a_supervisor_plan_with_no_subtask_fails_the_run_and_keeps_the_answer_on_the_plan_span(
    auth_client, member
):
    org = member.organization
    answer = {"answer": "I did it myself", "subtasks": [{"worker": "Nobody", "task": "Anything"}]}
    lead = make_agent(org, "Lead", responses=[says(**answer)])
    worker = make_agent(org, "Worker", inputs=["task"])
    orchestration = make_orchestration(org, "supervisor_worker", [lead, worker])

    response = execute(auth_client, orchestration, {"text": "Split me"})

    # The supervisor answered: a failed run of this orchestration, not a 502 like a provider outage.
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_plan" and "Worker" in error["message"]
    run = Run.objects.get(pk=error["fields"]["run_id"])
    assert run.status == "failed" and run.error["code"] == "invalid_plan"
    assert stored_events(run.pk)[-1].type == "run.failed"
    plan_span = Span.objects.get(run=run, kind="pattern")
    assert (plan_span.name, plan_span.status) == ("supervisor_worker.plan", "failed")
    assert plan_span.attributes["plan"] == answer
    assert Span.objects.get(run=run, kind="agent", agent_id=lead.pk).status == "completed"
    assert not Span.objects.filter(run=run, agent_id=worker.pk).exists()


# Every pattern in each of its modes, over agents that answer with the mock's schema-derived
# output (nothing scripted): each structured decision the engine asks for must come out valid.
EVERY_MODE = [
    ("sequential", ""),
    ("parallel", "max_concurrency: 1\n"),
    ("supervisor_worker", ""),
    ("supervisor_worker", "routing: {mode: round_robin}\n"),
    ("router", ""),
    ("router", "fallback: fail\n"),
    ("ensemble", ""),
    ("consensus", ""),
    ("consensus", "threshold: unanimous\n"),
    ("debate", "rounds: 1\n"),
    ("handoff", ""),
    ("handoff", "confidence_field: confidence\nmin_confidence: 0.5\n"),
    ("blackboard", ""),
]


@pytest.mark.parametrize(("pattern", "config_yaml"), EVERY_MODE)
def test_every_pattern_in_every_mode_runs_on_unscripted_mock_agents(
    auth_client, member, pattern, config_yaml
):
    org = member.organization
    count = PATTERNS[pattern].min_agents + 1
    agents = [make_agent(org, f"Agent {n}", description=f"Expert number {n}") for n in range(1, count + 1)]
    orchestration = make_orchestration(org, pattern, agents, config_yaml=config_yaml)

    body = executed(auth_client, orchestration, {"text": "Plan the product launch"})

    run_events(body)
    assert_span_tree(Run.objects.get(pk=body["run_id"]))
    names = [agent.name for agent in agents]
    if pattern == "supervisor_worker":
        assert body["output"]["subtasks"] and {s["worker"] for s in body["output"]["subtasks"]} <= set(
            names[1:]
        )
    if pattern == "router":
        assert body["output"]["specialist"] == names[1] and body["agents_executed"] == ids(*agents[:2])


def test_router_sends_the_input_to_the_second_specialist_it_names(auth_client, member):
    org = member.organization
    router = make_agent(org, "Router", responses=[says(answer="", route_to="Shipping")])
    billing = make_agent(org, "Billing", description="Invoices and refunds", responses=[says(answer="B")])
    shipping = make_agent(org, "Shipping", description="Parcels", responses=[says(answer="In transit")])
    orchestration = make_orchestration(org, "router", [router, billing, shipping])
    body = executed(auth_client, orchestration, {"text": "Where is my parcel?"})
    assert body["output"] == {"specialist": "Shipping", "output": {"answer": "In transit"}}
    assert body["agents_executed"] == ids(router, shipping)
    events = run_events(body)
    assert [(e.type, e.agent_id) for e in events] == [
        ("run.started", ""),
        ("agent.started", router.pk),
        ("agent.completed", router.pk),
        ("pattern.step", ""),
        ("agent.started", shipping.pk),
        ("agent.completed", shipping.pk),
        ("run.completed", ""),
    ]
    assert events[2].data["output"]["route_to"] == "Shipping"
    assert steps(events) == [
        {
            "pattern": "router",
            "step": "route",
            "specialist": "Shipping",
            "requested": "Shipping",
            "fallback": False,
        }
    ]
    assert events[4].data["inputs"] == {"text": "Where is my parcel?"}
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["router.route", "router.specialist"]
    assert billing.pk not in agent_spans_by_agent(spans)


def test_ensemble_experts_answer_concurrently_and_the_last_agent_synthesises(auth_client, member):
    org = member.organization
    optimist = make_agent(org, "Optimist", responses=[says(answer="Sales will grow")], latency_ms=200)
    pessimist = make_agent(org, "Pessimist", responses=[says(answer="Sales will shrink")], latency_ms=200)
    synthesizer = make_agent(
        org, "Synthesizer", inputs=["material"], responses=[says(answer="Flat, with risks both ways")]
    )
    orchestration = make_orchestration(
        org,
        "ensemble",
        [optimist, pessimist, synthesizer],
        config_yaml="synthesis_prompt: Weigh both forecasts.\n",
    )
    body = executed(auth_client, orchestration, {"text": "Forecast next quarter"})
    assert body["output"] == {
        "output": {"answer": "Flat, with risks both ways"},
        "answers": {"Optimist": {"answer": "Sales will grow"}, "Pessimist": {"answer": "Sales will shrink"}},
    }
    assert body["agents_executed"] == ids(optimist, pessimist, synthesizer)
    events = run_events(body)
    # The experts overlap: both start before either of their 200 ms calls ends.
    assert {(e.type, e.agent_id) for e in events[1:3]} == {
        ("agent.started", optimist.pk),
        ("agent.started", pessimist.pk),
    }
    assert steps(events) == [
        {"pattern": "ensemble", "step": "synthesize", "experts": ["Optimist", "Pessimist"]}
    ]
    brief = json.loads(
        next(
            e.data["inputs"]["material"]
            for e in events
            if e.type == "agent.started" and e.agent_id == synthesizer.pk
        )
    )
    assert brief["answers"] == body["output"]["answers"]
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["ensemble.answer", "ensemble.synthesize"]


def test_consensus_splits_two_to_one_and_the_majority_decides(auth_client, member):
    org = member.organization
    voters = [
        make_agent(org, "Alice", outputs=["decision"], responses=[says(decision="approve")]),
        make_agent(org, "Bob", outputs=["decision"], responses=[says(decision=" Approve ")]),
        make_agent(org, "Carol", outputs=["decision"], responses=[says(decision="reject")]),
    ]
    body = executed(auth_client, make_orchestration(org, "consensus", voters), {"text": "Ship v2?"})
    assert body["output"] == {
        "decision": "approve",
        "reached": True,
        "votes": {"Alice": "approve", "Bob": " Approve ", "Carol": "reject"},
        "tally": {"approve": 2, "reject": 1},
    }
    assert body["agents_executed"] == ids(*voters)
    events = run_events(body)
    assert steps(events) == [
        {
            "pattern": "consensus",
            "step": "tally",
            "tally": {"approve": 2, "reject": 1},
            "decision": "approve",
            "reached": True,
        }
    ]
    assert event_types(events)[-2] == "pattern.step"
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["consensus.vote"]
    assert len(spans["agent"]) == 3


def test_consensus_under_unanimity_reaches_no_decision_on_a_split(auth_client, member):
    org = member.organization
    votes = ["yes", "yes", "no"]
    voters = [
        make_agent(org, f"Voter {n}", outputs=["decision"], responses=[says(decision=vote)])
        for n, vote in enumerate(votes)
    ]
    orchestration = make_orchestration(org, "consensus", voters, config_yaml="threshold: unanimous\n")
    body = executed(auth_client, orchestration, {"text": "Agree?"})
    assert (body["output"]["decision"], body["output"]["reached"]) == (None, False)
    assert body["output"]["tally"] == {"yes": 2, "no": 1}


def test_debate_runs_its_rounds_and_the_judge_names_the_winner(auth_client, member):
    org = member.organization
    pro = make_agent(org, "Pro", inputs=["brief"], responses=[says(answer="Remote work boosts focus")])
    con = make_agent(org, "Con", inputs=["brief"], responses=[says(answer="Offices build teams")])
    judge = make_agent(
        org, "Judge", inputs=["brief"], responses=[says(answer="Con argued better", winner="Con")]
    )
    orchestration = make_orchestration(org, "debate", [pro, con, judge], config_yaml="rounds: 3\n")
    body = executed(auth_client, orchestration, {"text": "Remote or office?"})
    output = body["output"]
    assert output["winner"] == "Con" and output["verdict"] == {"answer": "Con argued better", "winner": "Con"}
    assert [(t["round"], t["debater"]) for t in output["transcript"]] == [
        (r, name) for r in (1, 2, 3) for name in ("Pro", "Con")
    ]
    assert body["agents_executed"] == ids(pro, con) * 3 + ids(judge)
    events = run_events(body)
    assert [(s["step"], s.get("round"), s.get("winner")) for s in steps(events)] == [
        ("round", 1, None),
        ("round", 2, None),
        ("round", 3, None),
        ("verdict", None, "Con"),
    ]
    # From the second round on, each debater sees the other's last argument.
    pro_briefs = [
        json.loads(e.data["inputs"]["brief"])
        for e in events
        if e.type == "agent.started" and e.agent_id == pro.pk
    ]
    assert pro_briefs[0]["other_arguments"] == {}
    assert pro_briefs[2]["other_arguments"] == {"Con": {"answer": "Offices build teams"}}
    judge_brief = json.loads(next(e.data["inputs"]["brief"] for e in events if e.agent_id == judge.pk))
    assert len(judge_brief["transcript"]) == 6
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["debate.round"] * 3 + ["debate.judge"]


def test_handoff_escalates_from_tier_one_to_tier_two(auth_client, member):
    org = member.organization
    tier1 = make_agent(org, "Frontline", responses=[says(answer="Not my area", escalate=True)])
    tier2 = make_agent(org, "Specialist", responses=[says(answer="Fixed the config", escalate=False)])
    tier3 = make_agent(org, "Engineer", responses=[says(answer="unused", escalate=False)])
    body = executed(auth_client, make_orchestration(org, "handoff", [tier1, tier2, tier3]), {"text": "Bug"})
    assert body["output"] == {
        "tier": 2,
        "agent": "Specialist",
        "handled": True,
        "output": {"answer": "Fixed the config", "escalate": False},
        "escalations": [{"tier": 1, "agent": "Frontline", "reason": "escalate"}],
    }
    assert body["agents_executed"] == ids(tier1, tier2)
    events = run_events(body)
    assert steps(events) == [
        {"pattern": "handoff", "step": "escalate", "tier": 1, "agent": "Frontline", "reason": "escalate"},
        {"pattern": "handoff", "step": "handled", "tier": 2, "agent": "Specialist", "handled": True},
    ]
    assert [(e.type, e.agent_id) for e in events[1:-1]] == [
        ("agent.started", tier1.pk),
        ("agent.completed", tier1.pk),
        ("pattern.step", ""),
        ("agent.started", tier2.pk),
        ("agent.completed", tier2.pk),
        ("pattern.step", ""),
    ]
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["handoff.tier", "handoff.tier"]
    assert tier3.pk not in agent_spans_by_agent(spans)


def test_handoff_escalates_on_low_confidence(auth_client, member):
    org = member.organization
    tier1 = make_agent(org, "Bot", responses=[says(answer="Maybe", escalate=False, confidence=0.2)])
    tier2 = make_agent(org, "Human", responses=[says(answer="Sure", escalate=False, confidence=0.95)])
    orchestration = make_orchestration(
        org, "handoff", [tier1, tier2], config_yaml="confidence_field: confidence\nmin_confidence: 0.7\n"
    )
    body = executed(auth_client, orchestration, {"text": "Hard question"})
    assert (body["output"]["tier"], body["output"]["handled"]) == (2, True)
    assert body["output"]["escalations"] == [{"tier": 1, "agent": "Bot", "reason": "low_confidence"}]


def test_blackboard_stops_when_the_controller_says_done(auth_client, member):
    org = member.organization
    controller = make_agent(
        org, "Controller", inputs=["board"], responses=[says(answer="Plan complete", done=True)]
    )
    market = make_agent(org, "Market", inputs=["board"], responses=[says(answer="Demand is high")])
    finance = make_agent(org, "Finance", inputs=["board"], responses=[says(answer="Costs are low")])
    orchestration = make_orchestration(
        org, "blackboard", [controller, market, finance], config_yaml="max_iterations: 5\n"
    )
    body = executed(auth_client, orchestration, {"text": "Open a store?"})
    assert body["output"] == {
        "output": {"answer": "Plan complete", "done": True},
        "blackboard": {"Market": {"answer": "Demand is high"}, "Finance": {"answer": "Costs are low"}},
        "iterations": 1,
        "done": True,
    }
    assert body["agents_executed"] == ids(market, finance, controller)
    events = run_events(body)
    assert steps(events) == [
        {
            "pattern": "blackboard",
            "step": "iteration",
            "iteration": 1,
            "contributors": ["Market", "Finance"],
            "done": True,
        }
    ]
    controller_brief = json.loads(
        next(e.data["inputs"]["board"] for e in events if e.agent_id == controller.pk)
    )
    assert controller_brief["blackboard"] == body["output"]["blackboard"]
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert [span.name for span in spans["pattern"]] == ["blackboard.iteration"]


def test_blackboard_without_done_stops_at_max_iterations(auth_client, member):
    org = member.organization
    controller = make_agent(org, "Controller", responses=[says(answer="Not yet", done=False)])
    helper = make_agent(org, "Helper", responses=[says(answer="More")])
    orchestration = make_orchestration(
        org, "blackboard", [controller, helper], config_yaml="max_iterations: 3\n"
    )
    body = executed(auth_client, orchestration, {"text": "Go"})
    assert (body["output"]["iterations"], body["output"]["done"]) == (3, False)
    assert body["agents_executed"] == ids(helper, controller) * 3
    assert [s["iteration"] for s in steps(run_events(body))] == [1, 2, 3]


# --- against the fake OpenAI-compatible server ---------------------------------------------------


def test_blackboard_end_to_end_against_the_fake_openai_server(auth_client, member, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    org = member.organization
    make_provider_config(org, api_base_url=fake_openai.base_url, is_default=True)
    remote = {"provider": "openai_compatible", "model": "gpt-4o-mini"}
    controller = make_agent(org, "Controller", **remote)
    writer = make_agent(org, "Writer", **remote)
    fake_openai.enqueue(
        json_answer({"answer": "First draft"}),
        json_answer({"answer": "Needs numbers", "done": False}),
        json_answer({"answer": "Draft with numbers"}),
        json_answer({"answer": "Complete", "done": True}),
    )
    orchestration = make_orchestration(org, "blackboard", [controller, writer])
    body = executed(auth_client, orchestration, {"text": "Write the memo"})
    assert body["output"] == {
        "output": {"answer": "Complete", "done": True},
        "blackboard": {"Writer": {"answer": "Draft with numbers"}},
        "iterations": 2,
        "done": True,
    }
    assert body["agents_executed"] == ids(writer, controller, writer, controller)
    sent = [request.json for request in fake_openai.requests]
    assert len(sent) == 4
    controller_schema = sent[1]["response_format"]["json_schema"]["schema"]
    assert set(controller_schema["properties"]) == {"answer", "done"}
    assert "control a shared blackboard" in sent[1]["messages"][0]["content"]
    assert "contribute to a shared blackboard" in sent[2]["messages"][0]["content"]
    assert "First draft" in sent[2]["messages"][-1]["content"]  # the writer sees its last contribution
    spans = assert_span_tree(Run.objects.get(pk=body["run_id"]))
    assert {span.model for span in spans["llm"]} == {"gpt-4o-mini"}
    assert {span.provider_kind for span in spans["llm"]} == {"openai_compatible"}
    assert [s["done"] for s in steps(run_events(body))] == [False, True]


# --- policies: errors, timeout, cost cap, budgets ------------------------------------------------


def _parallel_with_a_failing_agent(org, config_yaml):
    good = make_agent(org, "Good", responses=[says(answer="fine")])
    broken = make_agent(org, "Broken", responses=[{"error": "provider_error", "message": "upstream down"}])
    slow = make_agent(org, "Slow", responses=[says(answer="late")], latency_ms=400)
    return [good, broken, slow], make_orchestration(
        org, "parallel", [good, broken, slow], config_yaml=config_yaml
    )


def test_on_agent_error_fail_fails_the_run_and_cancels_the_calls_in_flight(auth_client, member):
    (good, broken, slow), orchestration = _parallel_with_a_failing_agent(member.organization, "")
    response = execute(auth_client, orchestration, {"text": "x"})
    assert response.status_code == 502, response.content
    error = response.json()["error"]
    assert error["code"] == "provider_error" and "upstream down" in error["message"]
    run = Run.objects.get(pk=error["fields"]["run_id"])
    assert run.status == "failed" and run.error["code"] == "provider_error"
    events = stored_events(run.pk)
    assert events[-1].type == "run.failed" and events[-1].data["error"]["code"] == "provider_error"
    agent_spans = {span.agent_id: span for span in Span.objects.filter(run=run, kind="agent")}
    assert agent_spans[good.pk].status == "completed"
    assert agent_spans[broken.pk].status == "failed"
    assert agent_spans[slow.pk].status == "cancelled"
    assert Span.objects.get(run=run, kind="llm", agent_id=slow.pk).status == "cancelled"
    assert not Span.objects.filter(run=run, ended_at__isnull=True).exists()
    # The completed call was paid for and is on the failed run.
    assert run.cost_usd == agent_spans[good.pk].cost_usd > 0


def test_on_agent_error_continue_completes_with_the_failure_reported(auth_client, member):
    (good, broken, slow), orchestration = _parallel_with_a_failing_agent(
        member.organization, "on_agent_error: continue\n"
    )
    body = executed(auth_client, orchestration, {"text": "x"})
    assert body["output"] == {
        "outputs": {"Good": {"answer": "fine"}, "Slow": {"answer": "late"}},
        "errors": {"Broken": "upstream down"},
    }
    assert body["agents_executed"] == ids(good, broken, slow)
    events = run_events(body)
    failed = [e for e in events if e.type == "agent.failed"]
    assert [(e.agent_id, e.data["code"]) for e in failed] == [(broken.pk, "provider_error")]


def test_the_orchestration_timeout_fails_the_run_with_504(auth_client, member):
    org = member.organization
    quick = make_agent(org, "Quick", responses=[says(answer="ok")])
    stuck = make_agent(org, "Stuck", latency_ms=60_000)
    orchestration = make_orchestration(org, "sequential", [quick, stuck], config_yaml="timeout_s: 0.5\n")
    started = time.perf_counter()
    response = execute(auth_client, orchestration, {"text": "x"})
    assert time.perf_counter() - started < 30  # nowhere near the 60 s the stuck agent would take
    assert response.status_code == 504, response.content
    assert response.json()["error"]["code"] == "orchestration_timeout"
    run = Run.objects.get(pk=response.json()["error"]["fields"]["run_id"])
    assert run.status == "failed" and run.error["code"] == "orchestration_timeout"
    stuck_span = Span.objects.get(run=run, kind="agent", agent_id=stuck.pk)
    assert stuck_span.status == "cancelled" and stuck_span.ended_at is not None
    assert Span.objects.get(run=run, kind="agent", agent_id=quick.pk).status == "completed"
    assert stored_events(run.pk)[-1].type == "run.failed"


def test_the_cost_cap_stops_the_run_before_the_next_agent(auth_client, member):
    org = member.organization
    agents = [make_agent(org, name, responses=[says(answer=name)]) for name in ("One", "Two", "Three")]
    orchestration = make_orchestration(
        org, "sequential", agents, config_yaml="max_total_cost_usd: 0.0000001\n"
    )
    response = execute(auth_client, orchestration, {"text": "x"})
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["code"] == "cost_limit_exceeded"
    run = Run.objects.get(pk=error["fields"]["run_id"])
    assert run.status == "failed"
    assert list(Span.objects.filter(run=run, kind="agent").values_list("agent_id", flat=True)) == [
        agents[0].pk
    ]
    assert run.cost_usd == Span.objects.get(run=run, kind="llm").cost_usd > 0


def test_an_agent_over_its_budget_mid_run_fails_the_run_cleanly_with_402(auth_client, member):
    org = member.organization
    first = make_agent(org, "First", responses=[says(answer="step one")])
    capped = make_agent(org, "Capped", responses=[says(answer="never")], budget_limit_usd=0.0001)
    last = make_agent(org, "Last", responses=[says(answer="never")])
    orchestration = make_orchestration(org, "sequential", [first, capped, last])
    response = execute(auth_client, orchestration, {"text": "x"})
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded" and error["fields"]["run_id"]
    run = Run.objects.get(pk=error["fields"]["run_id"])
    assert run.status == "failed" and run.error["code"] == "budget_exceeded"
    agent_spans = {span.agent_id: span for span in Span.objects.filter(run=run, kind="agent")}
    assert set(agent_spans) == {first.pk, capped.pk}
    assert agent_spans[capped.pk].status == "failed"
    # No call was made for the capped agent; the run carries only the first agent's real cost.
    assert list(Span.objects.filter(run=run, kind="llm").values_list("agent_id", flat=True)) == [first.pk]
    assert run.cost_usd == agent_spans[first.pk].cost_usd > 0
    # The refused reservation held nothing: no spend and no reservation for the capped agent.
    assert not BudgetCounter.objects.filter(subject=capped.pk).exclude(spent_usd=0, reserved_usd=0).exists()
    assert not BudgetCounter.objects.filter(reserved_usd__gt=0).exists()
    assert stored_events(run.pk)[-1].data["error"]["code"] == "budget_exceeded"


# --- cancel --------------------------------------------------------------------------------------


async def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.mark.usefixtures("llm_clients_closed")
async def test_cancel_mid_run_ends_it_cancelled_and_closes_the_spans_in_flight(member):
    def prepare():
        org = member.organization
        slow = [make_agent(org, f"Slow {n}", latency_ms=60_000) for n in (1, 2)]
        synthesizer = make_agent(org, "Synthesizer", responses=[says(answer="never")])
        # Two slow experts are in flight when the cancel arrives; the synthesizer never starts.
        orchestration = make_orchestration(org, "ensemble", [*slow, synthesizer])
        return orchestration, slow, synthesizer

    orchestration, slow, synthesizer = await sync_to_async(prepare)()
    started = time.perf_counter()
    run, _ = await orchestration_start(
        user=member, orchestration=orchestration, inputs={"text": "x"}, background=True
    )

    async def both_calling():
        return await Span.objects.filter(run_id=run.pk, kind="llm").acount() == 2

    await _wait_for(both_calling)
    assert await sync_to_async(run_cancel)(run) is True

    async def ended():
        return await Run.objects.filter(pk=run.pk, status__in=Run.FINISHED).aexists()

    await _wait_for(ended, 30)
    assert time.perf_counter() - started < 30  # nowhere near the 60 s latency

    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == "cancelled" and stored.error["code"] == "cancelled"
    spans = [span async for span in Span.objects.filter(run_id=run.pk)]
    assert all(span.ended_at is not None for span in spans)
    assert {span.kind: span.status for span in spans if span.kind != "agent"} == {
        "run": "cancelled",
        "pattern": "cancelled",
        "llm": "cancelled",
    }
    agent_spans = [span for span in spans if span.kind == "agent"]
    assert sorted(span.agent_id for span in agent_spans) == sorted(agent.pk for agent in slow)
    assert {span.status for span in agent_spans} == {"cancelled"}
    events = [event async for event in RunEvent.objects.filter(run_id=run.pk).order_by("seq")]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "run.failed" and events[-1].data["status"] == "cancelled"
    assert sorted(e.agent_id for e in events if e.type == "agent.failed") == sorted(a.pk for a in slow)
    assert not await BudgetCounter.objects.filter(reserved_usd__gt=0).aexists()
    assert await sync_to_async(run_cancel)(stored) is False  # already finished
