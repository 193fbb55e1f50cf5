"""The process's Prometheus metrics, exposed on `/metrics` next to django-prometheus' own.

Code that runs, calls models, serves deployments or holds WebSockets reports through the functions
below, never through the metric objects, so label values stay bounded: no ids; values of fixed sets
(run kinds, statuses, outcomes, channels, scopes) outside their set count as "other"; free-form
values (model names, provider kinds) are admitted up to a fixed number of distinct values per
process, after which new ones count as "other". Counters are per process, as Prometheus expects."""

from __future__ import annotations

import threading
from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram

OTHER = "other"
MAX_MODELS = 50
MAX_PROVIDER_KINDS = 16

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

RUNS = Counter("studio_runs_total", "Runs finished, by kind and final status.", ["kind", "status"])
RUN_DURATION = Histogram(
    "studio_run_duration_seconds", "Wall time of finished runs.", ["kind"], buckets=_SECONDS
)
LLM_CALLS = Counter(
    "studio_llm_calls_total",
    "LLM calls, by provider kind, model and outcome.",
    ["provider_kind", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "studio_llm_tokens_total", "Tokens of LLM calls, by direction.", ["provider_kind", "model", "direction"]
)
LLM_COST = Counter(
    "studio_llm_cost_usd_total", "Priced cost of LLM calls in USD.", ["provider_kind", "model"]
)
LLM_LATENCY = Histogram(
    "studio_llm_call_duration_seconds",
    "Latency of completed LLM calls as the provider adapter measured it.",
    ["provider_kind"],
    buckets=_SECONDS,
)
WS_OPEN = Gauge("studio_websocket_connections", "WebSocket connections open now in this process.")
WS_OPENED = Counter("studio_websocket_connections_opened_total", "WebSocket connections accepted.")
DEPLOYMENT_REQUESTS = Counter(
    "studio_deployment_requests_total",
    "Requests to deployed agents and orchestrations.",
    ["channel", "outcome"],
)
RATE_LIMITED = Counter("studio_rate_limit_rejections_total", "Requests refused by a rate limit.", ["scope"])

RUN_KINDS = frozenset({"agent_test", "orchestration", "deployment"})
RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})
LLM_OUTCOMES = frozenset({"completed", "failed", "cancelled"})
CHANNELS = frozenset({"api", "mcp", "cli"})
DEPLOYMENT_OUTCOMES = frozenset(
    {"completed", "failed", "unauthorized", "not_found", "rate_limited", "invalid", "unavailable"}
)
RATE_LIMIT_SCOPES = frozenset({"deployment", "api"})


class _BoundedValues:
    """Admits the first `limit` distinct values of a free-form label; later ones become "other"."""

    def __init__(self, limit: int):
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        value = (value or "unknown")[:80]
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


_model = _BoundedValues(MAX_MODELS)
_provider_kind = _BoundedValues(MAX_PROVIDER_KINDS)


def _known(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def run_finished(*, kind: str, status: str, execution_time_ms: int | None) -> None:
    """A run reached its final status (called once per run, where the ledger finishes it)."""
    kind = _known(str(kind), RUN_KINDS)
    RUNS.labels(kind=kind, status=_known(str(status), RUN_STATUSES)).inc()
    if execution_time_ms is not None:
        RUN_DURATION.labels(kind=kind).observe(execution_time_ms / 1000)


def llm_call_finished(
    *,
    provider_kind: str,
    model: str,
    outcome: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal | float = 0,
    latency_ms: float | None = None,
) -> None:
    """An LLM call ended (completed, failed or cancelled), with what it used and cost."""
    kind, model = _provider_kind(provider_kind), _model(model)
    LLM_CALLS.labels(provider_kind=kind, model=model, outcome=_known(outcome, LLM_OUTCOMES)).inc()
    if input_tokens:
        LLM_TOKENS.labels(provider_kind=kind, model=model, direction="input").inc(input_tokens)
    if output_tokens:
        LLM_TOKENS.labels(provider_kind=kind, model=model, direction="output").inc(output_tokens)
    if cost_usd:
        LLM_COST.labels(provider_kind=kind, model=model).inc(float(cost_usd))
    if latency_ms is not None:
        LLM_LATENCY.labels(provider_kind=kind).observe(latency_ms / 1000)


def llm_call_completed(provider_kind: str, model: str, completion, cost_usd, /) -> None:
    """A completed call: `completion` has `model`, `usage.input_tokens/output_tokens`, `latency_ms`."""
    llm_call_finished(
        provider_kind=provider_kind,
        model=completion.model or model,
        outcome="completed",
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        cost_usd=cost_usd,
        latency_ms=completion.latency_ms,
    )


def llm_call_failed(provider_kind: str, model: str, /, *, cancelled: bool) -> None:
    """A call that raised (failed) or was cancelled; it costs nothing."""
    llm_call_finished(
        provider_kind=provider_kind, model=model, outcome="cancelled" if cancelled else "failed"
    )


def ws_connected() -> None:
    """A WebSocket connection was accepted (call from the consumer's connect)."""
    WS_OPENED.inc()
    WS_OPEN.inc()


def ws_disconnected() -> None:
    """An accepted WebSocket connection closed (call from the consumer's disconnect)."""
    WS_OPEN.dec()


def deployment_request(*, outcome: str, channel: str = "api") -> None:
    """A request to a deployment ended: completed, failed, unauthorized, not_found, rate_limited,
    invalid or unavailable (rate limiter down); `channel` is api, mcp or cli."""
    DEPLOYMENT_REQUESTS.labels(
        channel=_known(channel, CHANNELS), outcome=_known(outcome, DEPLOYMENT_OUTCOMES)
    ).inc()


def rate_limit_rejected(*, scope: str = "deployment") -> None:
    """A rate limit refused a request (scope: deployment or api; anything else counts as "other")."""
    RATE_LIMITED.labels(scope=_known(scope, RATE_LIMIT_SCOPES)).inc()


# --- the worker pool (STUDIO_EXECUTION=queue) ----------------------------------------------------

JOB_LATENCY = Histogram(
    "studio_job_latency_seconds",
    "Time from a run's job being deferred to a worker starting it (first attempts).",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RUN_RESUMES = Counter("studio_run_resumes_total", "Runs resumed by a worker after their execution stopped.")
RUN_ATTEMPTS = Histogram(
    "studio_run_attempts",
    "Executions a queued run took (1: never interrupted), observed as each execution ends.",
    buckets=(1, 2, 3, 5, 10),
)
QUEUES = frozenset({"runs", "maintenance", "webhooks"})


def job_started(*, queue: str, latency_s: float) -> None:
    """A worker started a job `latency_s` after it was deferred."""
    JOB_LATENCY.labels(queue=_known(queue, QUEUES)).observe(latency_s)


def run_resumed() -> None:
    RUN_RESUMES.inc()


def run_attempts(attempt: int) -> None:
    """An execution of a queued run ended; it was the run's `attempt`-th."""
    RUN_ATTEMPTS.observe(attempt)


class _QueueCollector:
    """`studio_queue_depth` (jobs waiting) and `studio_jobs_running` (jobs being executed), by
    queue, read from the job table at each scrape: the pool's values, the same from any process
    (aggregate them with max, not sum)."""

    def __init__(self, counts):
        self.counts = counts

    def describe(self):
        """The gauges without samples: registering the collector then reads no database (it is
        registered while Django loads its apps, when queries are not allowed yet)."""
        return self._families()

    def _families(self):
        from prometheus_client.core import GaugeMetricFamily

        return [
            GaugeMetricFamily("studio_queue_depth", "Jobs waiting, by queue.", labels=["queue"]),
            GaugeMetricFamily("studio_jobs_running", "Jobs being executed, by queue.", labels=["queue"]),
        ]

    def collect(self):
        depth, running = self._families()
        totals = {(queue, status): 0 for queue in ("runs", "maintenance") for status in ("todo", "doing")}
        try:
            for row in self.counts():
                key = (_known(row["queue_name"], QUEUES), row["status"])
                totals[key] = totals.get(key, 0) + row["jobs"]
        except Exception:  # the database unreachable: no sample rather than a failed scrape
            return
        for (queue, status), jobs in sorted(totals.items()):
            (depth if status == "todo" else running).add_metric([queue], jobs)
        yield depth
        yield running


_queue_collector: list[_QueueCollector] = []


def queue_gauges_register(counts) -> None:
    """Exports the queue gauges from `counts()` (rows of queue_name, status, jobs), once per process."""
    from prometheus_client import REGISTRY

    if not _queue_collector:
        _queue_collector.append(_QueueCollector(counts))
        REGISTRY.register(_queue_collector[0])
