"""GET /api/metrics (time series bucketed in SQL) and the process metrics on /metrics."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agents.runs import agent_test_run
from observability import metrics
from observability.recorder import RunRecorder
from observability.rollup import usage_seal
from observability.series import METRICS, metric_series
from observability.sql import percentile
from providers.gateway import StudioGateway
from providers.llm.types import CompletionRequest, LLMCall, LLMError, Message
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.fakes.behaviours import status
from tests.observability.factories import queued_run, run, save
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db


def hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def series(client, metric, period="24h"):
    response = client.get(f"/api/metrics?metric_name={metric}&period={period}")
    assert response.status_code == 200, response.content
    body = response.json()
    return body, {point["timestamp"]: point["value"] for point in body["points"]}


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def two_busy_hours(viewer, other_org_owner):
    """Two runs an hour ago (one failed), one five hours ago, one 30 hours ago; noise elsewhere."""
    now = timezone.now()
    one, five = hour_floor(now - dt.timedelta(hours=1)), hour_floor(now - dt.timedelta(hours=5))
    org = viewer.organization
    save(
        run(org, at=one + dt.timedelta(minutes=5), cost="0.25", input_tokens=100, output_tokens=50),
        run(
            org,
            at=one + dt.timedelta(minutes=50),
            status="failed",
            cost="0.05",
            input_tokens=10,
            output_tokens=0,
        ),
        run(org, at=five + dt.timedelta(minutes=1), cost="1.5", input_tokens=1, output_tokens=2),
        run(org, at=now - dt.timedelta(hours=30)),
        run(other_org_owner.organization, at=one + dt.timedelta(minutes=5), cost="9"),
    )
    return one, five


def test_executions_per_hour_with_empty_buckets_filled_with_zero(viewer_client, two_busy_hours):
    one, five = two_busy_hours
    body, points = series(viewer_client, "executions")
    assert body["metric"] == "executions" and body["period"] == "24h" and body["interval"] == "hour"
    assert len(body["points"]) == 24
    timestamps = [point["timestamp"] for point in body["points"]]
    assert timestamps == sorted(timestamps) and timestamps[-1] == stamp(hour_floor(timezone.now()))
    assert points[stamp(one)] == 2 and points[stamp(five)] == 1
    assert sum(points.values()) == 3  # the run of 30 hours ago and the other organization's are out
    assert list(points.values()).count(0) == 22


def test_errors_cost_and_tokens_per_bucket(viewer_client, two_busy_hours):
    one, five = two_busy_hours
    assert series(viewer_client, "errors")[1][stamp(one)] == 1
    assert series(viewer_client, "errors")[1][stamp(five)] == 0
    cost = series(viewer_client, "cost_usd")[1]
    assert cost[stamp(one)] == pytest.approx(0.30) and cost[stamp(five)] == pytest.approx(1.5)
    tokens = series(viewer_client, "tokens")[1]
    assert tokens[stamp(one)] == 160 and tokens[stamp(five)] == 3


def test_latency_percentiles_per_bucket(viewer_client, viewer):
    now = timezone.now()
    bucket = hour_floor(now - dt.timedelta(hours=2))
    latencies = [100, 200, 300, 400, 1000]
    save(
        *(
            run(viewer.organization, at=bucket + dt.timedelta(minutes=i), execution_time_ms=ms)
            for i, ms in enumerate(latencies)
        )
    )
    save(
        run(viewer.organization, at=bucket, status="running", execution_time_ms=None)
    )  # unfinished: no latency
    p50 = series(viewer_client, "latency_p50_ms")[1]
    p95 = series(viewer_client, "latency_p95_ms")[1]
    assert p50[stamp(bucket)] == 300
    assert p95[stamp(bucket)] == pytest.approx(880)  # interpolated like percentile_cont: 400 + 0.8 * 600
    assert p95[stamp(hour_floor(now))] == 0


def test_percentile_matches_percentile_cont():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 20, 30, 40, 50], 0.95) == pytest.approx(48)


@pytest.mark.parametrize(
    "period, interval, count", [("1h", "minute", 60), ("7d", "hour", 168), ("30d", "day", 30)]
)
def test_each_period_has_its_bucket_width_and_count(viewer_client, viewer, period, interval, count):
    save(run(viewer.organization, at=timezone.now() - dt.timedelta(minutes=2)))
    body, points = series(viewer_client, "executions", period)
    assert body["interval"] == interval and len(body["points"]) == count
    assert sum(points.values()) == 1


def test_buckets_line_up_with_a_fixed_clock(viewer):
    now = dt.datetime(2026, 3, 10, 12, 34, 56, tzinfo=dt.UTC)
    save(
        run(viewer.organization, at=dt.datetime(2026, 3, 10, 0, 0, 1, tzinfo=dt.UTC)),
        run(viewer.organization, at=dt.datetime(2026, 2, 9, 23, 59, 59, tzinfo=dt.UTC)),  # before the window
    )
    body = metric_series(organization_id=viewer.organization_id, metric="executions", period="30d", now=now)
    assert body["points"][0]["timestamp"] == dt.datetime(2026, 2, 9, tzinfo=dt.UTC)
    assert body["points"][-1] == {"timestamp": dt.datetime(2026, 3, 10, tzinfo=dt.UTC), "value": 1}
    assert sum(point["value"] for point in body["points"]) == 2  # Feb 9 is the first bucket


@pytest.mark.parametrize(
    "query, field",
    [
        ("metric_name=throughput", "metric_name"),
        ("", "metric_name"),
        ("metric_name=errors&period=2d", "period"),
    ],
)
def test_unknown_metric_or_period_is_a_400_listing_the_valid_ones(viewer_client, query, field):
    response = viewer_client.get(f"/api/metrics?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    valid = METRICS if field == "metric_name" else ("1h", "24h", "7d", "30d")
    assert all(name in error["message"] for name in valid)


@pytest.mark.parametrize("metric", ["executions", "latency_p95_ms"])
@pytest.mark.parametrize("n", [1, 40])
def test_metrics_query_count_is_constant(viewer_client, viewer, django_assert_num_queries, metric, n):
    save(*(run(viewer.organization, at=timezone.now() - dt.timedelta(hours=i % 24)) for i in range(n)))
    with django_assert_num_queries(2):  # user, the bucketed aggregate
        series(viewer_client, metric)


@pytest.mark.parametrize(("metric", "queries"), [("cost_usd", 2), ("latency_p50_ms", 3)])
@pytest.mark.parametrize("n", [1, 40])
def test_daily_series_query_count_is_constant(
    viewer_client, viewer, django_assert_num_queries, metric, queries, n
):
    """30d: sums are one UNION ALL of rollups and raw runs; a percentile reads the sealed days'
    stored ones, then the raw days."""
    save(*(run(viewer.organization, at=timezone.now() - dt.timedelta(days=i % 29)) for i in range(n)))
    usage_seal(viewer.organization_id)
    with django_assert_num_queries(queries):  # user, then those
        series(viewer_client, metric, "30d")


# Process metrics on /metrics ------------------------------------------------------------------------


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def scraper(api_client, settings):
    settings.METRICS_TOKEN = "scrape-token"
    return api_client


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db(transaction=True)
def test_a_run_moves_the_run_and_llm_counters(scraper, member):
    agent = make_agent(
        member.organization, support_yaml(responses=[{"response": {"response": "ok", "priority": "low"}}])
    )
    before = scrape(scraper)
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Hello?"})
    after = scrape(scraper)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("studio_runs_total", kind="agent_test", status="completed") == 1
    assert delta("studio_run_duration_seconds_count", kind="agent_test") == 1
    call = {"provider_kind": "mock", "model": "mock-1"}
    assert delta("studio_llm_calls_total", outcome="completed", **call) == 1
    assert delta("studio_llm_tokens_total", direction="input", **call) == result["tokens"]["input"]
    assert delta("studio_llm_tokens_total", direction="output", **call) == result["tokens"]["output"]
    assert delta("studio_llm_cost_usd_total", **call) == pytest.approx(result["cost"])
    assert delta("studio_llm_call_duration_seconds_count", provider_kind="mock") == 1
    assert (
        value(after, "django_http_requests_total_by_method_total", method="GET") > 0
    )  # django-prometheus too


def test_websocket_deployment_and_rate_limit_metrics(scraper, db):
    before = scrape(scraper)
    metrics.ws_connected()
    metrics.ws_connected()
    metrics.ws_disconnected()
    metrics.deployment_request(outcome="completed")
    metrics.deployment_request(outcome="rate_limited", channel="mcp")
    metrics.deployment_request(outcome="made-up-outcome")
    metrics.rate_limit_rejected(scope="deployment")
    after = scrape(scraper)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("studio_websocket_connections") == 1
    assert delta("studio_websocket_connections_opened_total") == 2
    assert delta("studio_deployment_requests_total", channel="api", outcome="completed") == 1
    assert delta("studio_deployment_requests_total", channel="mcp", outcome="rate_limited") == 1
    assert delta("studio_deployment_requests_total", channel="api", outcome="other") == 1
    assert delta("studio_rate_limit_rejections_total", scope="deployment") == 1


def test_free_form_label_values_are_capped():
    bounded = metrics._BoundedValues(2)
    assert [bounded(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]
    metrics.run_finished(kind="agent_test; drop", status="weird", execution_time_ms=None)
    assert REGISTRY.get_sample_value("studio_runs_total", {"kind": "other", "status": "other"}) >= 1


@pytest.mark.django_db(transaction=True)
async def test_a_failed_provider_call_counts_as_failed(member, fake_openai, settings, llm_clients_closed):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    await sync_to_async(make_provider_config)(member.organization, api_base_url=fake_openai.base_url)
    fake_openai.enqueue(status(500))
    run_row = await sync_to_async(queued_run)(
        organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={}
    )
    labels = {"provider_kind": "openai_compatible", "model": "gpt-4o-mini", "outcome": "failed"}
    before = REGISTRY.get_sample_value("studio_llm_calls_total", labels) or 0
    request = CompletionRequest(
        messages=(Message(role="user", content="Hi"),), model="gpt-4o-mini", max_retries=0
    )
    gateway = StudioGateway(run=run_row, recorder=RunRecorder(run_row))
    try:
        with pytest.raises(LLMError):
            await gateway.complete(LLMCall(request=request, provider_kind="openai_compatible"))
    finally:
        await sync_to_async(connections.close_all)()  # the ORM's worker thread would keep the test DB open
    assert REGISTRY.get_sample_value("studio_llm_calls_total", labels) == before + 1
