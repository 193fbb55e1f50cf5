"""GET /api/traces and /api/traces/{id}: runs as traces, filters, date validation, span trees."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.runs import agent_test_run
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.api_cases import APIResourceCases, Call
from tests.observability.factories import run, save, span

pytestmark = pytest.mark.django_db

AGENT = "agent-" + "a" * 32
OTHER_AGENT = "agent-" + "b" * 32


class TestTraceAPI(APIResourceCases):
    list_path = "/api/traces"
    detail_path = "/api/traces/{pk}"
    reads = (Call("GET", "/api/metrics?metric_name=executions"),)
    list_queries = 3  # user, count, page (span counts are a subquery)
    detail_queries = 3  # user, run, spans

    def make(self, organization):
        (row,) = save(run(organization, agent_id=AGENT))
        span(row, "run", "r")
        return row


def test_traces_are_newest_first_with_totals_and_only_the_organizations(
    viewer_client, viewer, other_org_owner
):
    now = timezone.now()
    org = viewer.organization
    oldest, newest, middle = save(
        run(org, at=now - dt.timedelta(hours=3), agent_id=AGENT, input_tokens=7, output_tokens=3),
        run(org, at=now - dt.timedelta(hours=1), status="failed", error={"code": "x", "message": "boom"}),
        run(org, at=now - dt.timedelta(hours=2), cost="0.5", input_tokens=100, output_tokens=20),
    )
    save(run(other_org_owner.organization, at=now))
    span(middle, "run", "agent:Support")

    page = viewer_client.get("/api/traces").json()

    assert page["count"] == 3
    assert [row["id"] for row in page["results"]] == [newest.pk, middle.pk, oldest.pk]
    by_id = {row["id"]: row for row in page["results"]}
    assert by_id[middle.pk]["tokens"] == {"input": 100, "output": 20, "total": 120}
    assert by_id[middle.pk]["cost_usd"] == 0.5 and by_id[middle.pk]["span_count"] == 1
    assert by_id[oldest.pk]["agent_id"] == AGENT and by_id[oldest.pk]["orchestration_id"] is None
    assert (
        by_id[newest.pk]["error"] == {"code": "x", "message": "boom"} and by_id[newest.pk]["span_count"] == 0
    )
    assert by_id[oldest.pk]["execution_time_ms"] == 100 and by_id[oldest.pk]["trace_id"] == oldest.trace_id


def test_traces_filter_by_references_status_and_dates(viewer_client, viewer):
    org = viewer.organization
    now = timezone.now().replace(microsecond=0)
    day = now - dt.timedelta(days=3)
    agent_run, orchestration_run, deployment_run, old_run = save(
        run(org, at=now, agent_id=AGENT),
        run(org, at=now, kind="orchestration", orchestration_id="orch-" + "1" * 32, status="failed"),
        run(org, at=now, kind="deployment", deployment_id="deploy-" + "2" * 32, agent_id=OTHER_AGENT),
        run(org, at=day, agent_id=AGENT, status="cancelled"),
    )

    def ids(query):
        response = viewer_client.get(f"/api/traces?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(f"agent_id={AGENT}") == {agent_run.pk, old_run.pk}
    assert ids("orchestration_id=orch-" + "1" * 32) == {orchestration_run.pk}
    assert ids("deployment_id=deploy-" + "2" * 32) == {deployment_run.pk}
    assert ids("status=failed") == {orchestration_run.pk}
    assert ids(f"agent_id={AGENT}&status=cancelled") == {old_run.pk}
    assert ids(f"end_date={day.date().isoformat()}") == {old_run.pk}  # a date includes its whole day
    assert ids(f"start_date={(day + dt.timedelta(days=1)).date().isoformat()}") == {
        agent_run.pk,
        orchestration_run.pk,
        deployment_run.pk,
    }
    exactly = day.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(f"start_date={exactly}&end_date={exactly}") == {old_run.pk}
    assert ids(f"start_date={(day + dt.timedelta(seconds=1)).isoformat()}&end_date={now.isoformat()}") == {
        agent_run.pk,
        orchestration_run.pk,
        deployment_run.pk,
    }
    limited = viewer_client.get("/api/traces?limit=2").json()
    assert limited["count"] == 4 and len(limited["results"]) == 2 and limited["limit"] == 2


@pytest.mark.parametrize(
    "query, field",
    [
        ("start_date=yesterday", "start_date"),
        ("end_date=2026-13-45", "end_date"),
        ("start_date=2026-02-30T10:00:00", "start_date"),
        ("start_date=2026-11-20&end_date=2026-11-10", "start_date"),
        ("start_date=2026-11-20T10:00:01Z&end_date=2026-11-20T10:00:00Z", "start_date"),
        ("status=exploded", "status"),
    ],
)
def test_nonsense_filters_are_a_400_in_the_standard_shape(viewer_client, query, field):
    response = viewer_client.get(f"/api/traces?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert error["fields"][field][0]


def test_a_trace_is_the_run_with_its_nested_span_tree(viewer_client, viewer):
    (root_run,) = save(run(viewer.organization, agent_id=AGENT, input={"q": "hi"}, output={"a": "yo"}))
    root = span(root_run, "run", "orchestration:sequential", duration_ms=900)
    first = span(root_run, "agent", "Researcher", parent=root, offset_ms=10, agent_id=AGENT)
    second = span(
        root_run, "agent", "Writer", parent=root, offset_ms=500, agent_id=OTHER_AGENT, status="failed"
    )
    llm = span(
        root_run,
        "llm",
        "openai:gpt-4o-mini",
        parent=first,
        offset_ms=20,
        provider_kind="openai",
        model="gpt-4o-mini",
        input_tokens=30,
        output_tokens=12,
        cost_usd=Decimal("0.0025"),
        attributes={"finish_reason": "stop", "latency_ms": 123.4},
    )
    tool = span(root_run, "tool", "search", parent=first, offset_ms=200, error="timeout", status="failed")

    response = viewer_client.get(f"/api/traces/{root_run.pk}")

    assert response.status_code == 200
    trace = response.json()
    assert trace["id"] == root_run.pk and trace["input"] == {"q": "hi"} and trace["output"] == {"a": "yo"}
    assert trace["span_count"] == 5
    assert [node["id"] for node in trace["spans"]] == [root.pk]
    top = trace["spans"][0]
    assert top["parent_id"] is None and top["duration_ms"] == 900
    assert [child["id"] for child in top["children"]] == [first.pk, second.pk]
    researcher, writer = top["children"]
    assert writer["status"] == "failed" and writer["children"] == []
    assert [child["id"] for child in researcher["children"]] == [llm.pk, tool.pk]
    call, search = researcher["children"]
    assert call["tokens"] == {"input": 30, "output": 12, "total": 42}
    assert call["cost_usd"] == 0.0025 and call["model"] == "gpt-4o-mini" and call["provider_kind"] == "openai"
    assert call["attributes"] == {"finish_reason": "stop", "latency_ms": 123.4}
    assert call["parent_id"] == first.pk and call["started_at"] and call["ended_at"]
    assert search["error"] == "timeout" and search["children"] == []


def test_an_unknown_trace_is_a_404(viewer_client):
    assert viewer_client.get("/api/traces/run-" + "0" * 32).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_real_agent_run_is_traced_run_agent_llm(member, auth_client):
    agent = make_agent(
        member.organization, support_yaml(responses=[{"response": {"response": "ok", "priority": "low"}}])
    )
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Where is my parcel?"})

    trace = auth_client.get(f"/api/traces/{result['run_id']}").json()

    assert trace["status"] == "completed" and trace["agent_id"] == agent.pk
    assert trace["tokens"]["total"] == result["tokens"]["total"] > 0
    (root,) = trace["spans"]
    assert root["kind"] == "run"
    (agent_span,) = root["children"]
    assert agent_span["kind"] == "agent" and agent_span["agent_id"] == agent.pk
    (llm,) = agent_span["children"]
    assert llm["kind"] == "llm" and llm["provider_kind"] == "mock" and llm["tokens"]["total"] > 0
    assert llm["cost_usd"] == pytest.approx(result["cost"])
    listed = auth_client.get(f"/api/traces?agent_id={agent.pk}").json()["results"]
    assert [row["id"] for row in listed] == [result["run_id"]] and listed[0]["span_count"] == 3


@pytest.mark.parametrize("n", [1, 20])
def test_trace_detail_query_count_is_constant(viewer_client, viewer, django_assert_num_queries, n):
    (row,) = save(run(viewer.organization))
    parent = span(row, "run", "root")
    for index in range(n):
        parent = span(row, "agent", f"a{index}", parent=parent, offset_ms=index)
    with django_assert_num_queries(3):  # user, run, spans
        response = viewer_client.get(f"/api/traces/{row.pk}")
    assert response.json()["span_count"] == n + 1


def test_a_trace_shows_the_attempts_of_its_run_in_the_list_and_the_detail(
    viewer_client, viewer, django_assert_num_queries
):
    resumed, fresh = save(run(viewer.organization, attempts=3), run(viewer.organization, attempts=1))

    with django_assert_num_queries(TestTraceAPI.list_queries):  # a column: no query more
        listed = viewer_client.get("/api/traces").json()["results"]
    assert {row["id"]: row["attempts"] for row in listed} == {resumed.pk: 3, fresh.pk: 1}
    assert viewer_client.get(f"/api/traces/{resumed.pk}").json()["attempts"] == 3
    schema = viewer_client.get("/api/schema?format=json").json()["components"]["schemas"]
    assert "attempts" in schema["Trace"]["required"] and "attempts" in schema["TraceDetail"]["required"]
    assert "resume" in schema["Trace"]["properties"]["attempts"]["description"]
