"""Serving a call to a deployment, whatever the channel (HTTP, MCP, CLI): admit the caller (name,
status, channel, key), count the call against the deployment's rate limit, check the inputs against
the pinned signature, and start the pinned config as a `deployment` run in the ledger.

The admission and the check of a call are plain synchronous functions (one trip to a worker thread
from the async channels), except on the hot path of the HTTP call and the MCP tool call: a key this
process admitted, of a deployment unchanged since, is admitted and counted on the event loop in one
cache round trip (`deployment_admit_and_begin_async`). The run is started (admitted under the
organization's cap of runs in progress) and awaited or launched on the event loop."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from agents.runtime.types import AgentError
from deployments.admission import AdmittedKey, admitted_key, admitted_key_kept, stamp_key
from deployments.keys import looks_like_key
from deployments.models import Deployment, DeploymentKey
from deployments.pinning import pinned_of
from observability import metrics
from observability.limits import RunLimitReached
from observability.models import Run
from observability.queue import finished_hook
from observability.supervisor import Finished, RunDraft, RunFailed
from studio.api.ratelimit import RateLimitUnavailable, WindowCount, window_hit, window_hit_async
from studio.errors import CodedError
from studio.loop_cache import cache_get

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 60
# last_used_at is kept to the minute: most calls then read the key without writing it.
KEY_TOUCH_EVERY = timedelta(seconds=60)


class DeploymentRefused(CodedError):
    """A call refused before any run exists; `code`, `status` and `message` map to the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message, code=code, status=status, fields=fields, retry_after=retry_after)


def _not_found(name: str) -> DeploymentRefused:
    return DeploymentRefused(404, "not_found", f"No running deployment named {name!r}.")


def deployment_admit(*, name: str, key: str | None, channel: str) -> Deployment:
    """The running deployment `name` if `key` is one of its active keys and it serves `channel`.

    The key is checked first, and a caller without one of the deployment's keys learns nothing of
    it: a missing key is 401 `not_authenticated`, any other (wrong, revoked, another deployment's)
    401 `invalid_api_key`, whether or not a deployment of that name exists. With a key: stopped is
    404 `not_found`; not served on this channel 404 `channel_off`; a suspended organization 403.
    The hot path reads no row: the key is admitted from this process's entries while the
    deployment is unchanged (`deployments.admission`)."""
    matched = admitted_key(name=name, key=key) if looks_like_key(key) else None
    if matched is None:
        message = "A deployment key is required." if not key else "The deployment key is not valid."
        raise DeploymentRefused(401, "invalid_api_key" if key else "not_authenticated", message)
    deployment = matched.deployment
    refused = _refusal(deployment, name=name, channel=channel)
    if refused is not None:
        raise refused
    if _touch_due(matched):
        now = timezone.now()
        DeploymentKey.objects.filter(pk=matched.key_id).update(last_used_at=now)
        matched.last_used_at = now
    return deployment


def _refusal(deployment: Deployment, *, name: str, channel: str) -> DeploymentRefused | None:
    """Why a call with a valid key of `deployment` is refused (None: it is not)."""
    if not deployment.is_running:
        return _not_found(name)
    if channel_of(channel) not in deployment.channels:
        return DeploymentRefused(
            404, "channel_off", f"The {channel_of(channel)} channel of deployment {name!r} is off."
        )
    if deployment.organization.is_suspended:
        return DeploymentRefused(403, "organization_suspended", "The organization is suspended.")
    return None


def _touch_due(matched: AdmittedKey) -> bool:
    return matched.last_used_at is None or timezone.now() - matched.last_used_at > KEY_TOUCH_EVERY


def channel_of(channel: str) -> str:
    return channel if channel in ("api", "mcp", "cli") else "api"


def deployment_rate_hit(deployment: Deployment) -> None:
    """Counts one call in the deployment's minute (shared by every server process through the cache).
    Over the limit: 429 with the seconds until the next minute. The cache unreachable: 503, so the
    limit fails closed."""
    try:
        hit = window_hit(_rate_key(deployment), window_s=RATE_WINDOW_S)
    except Exception:
        logger.warning("Rate limiter unavailable for deployment %s", deployment.pk, exc_info=True)
        raise DeploymentRefused(
            503, "rate_limiter_unavailable", "The rate limiter is unavailable; try again shortly."
        ) from None
    _rate_check(deployment, hit)


def _rate_key(deployment: Deployment) -> str:
    return f"deployment:{deployment.pk}"


def _rate_check(deployment: Deployment, hit: WindowCount) -> None:
    if hit.count > deployment.rate_limit_per_minute:
        metrics.rate_limit_rejected(scope="deployment")
        raise DeploymentRefused(
            429,
            "rate_limited",
            f"This deployment accepts {deployment.rate_limit_per_minute} calls a minute; "
            f"retry in {hit.retry_after} s.",
            retry_after=hit.retry_after,
        )


def deployment_call_begin(*, deployment: Deployment, inputs: Any) -> RunDraft:
    """Counts the call and checks its inputs (400 before any run exists): the draft of its run."""
    deployment_rate_hit(deployment)
    return _call_draft(deployment, inputs)


def _call_draft(deployment: Deployment, inputs: Any) -> RunDraft:
    try:
        inputs = pinned_of(deployment).inputs_check(inputs)
    except AgentError as error:
        raise DeploymentRefused(error.status, error.code, error.message, fields=error.fields) from None
    return RunDraft(
        organization_id=deployment.organization_id,
        user_id=None,  # a caller with a key is no user of the studio
        kind=Run.Kind.DEPLOYMENT,
        input=inputs,
        agent_id=deployment.agent_id or "",
        orchestration_id=deployment.orchestration_id or "",
        deployment_id=deployment.pk,
    )


def deployment_admit_and_begin(*, name: str, key: str | None, channel: str, inputs: Any):
    """Admission and the start of a call in one trip to a worker thread (the HTTP channel)."""
    deployment = deployment_admit(name=name, key=key, channel=channel)
    return deployment, deployment_call_begin(deployment=deployment, inputs=inputs)


async def deployment_admit_async(*, name: str, key: str | None, channel: str) -> Deployment:
    """`deployment_admit` from the event loop, for a request that makes no call (MCP's initialize
    and listing, before its tool call is admitted again and counted): a key this process admitted,
    of a deployment unchanged since, takes no thread and one cache read of the deployment's stamp.
    Any other request takes the sync path on a worker thread, as in `deployment_admit_and_begin_async`."""
    kept = _kept_admission(name=name, key=key, channel=channel)
    if kept is not None:
        deployment, stamp = kept
        try:
            unchanged = await cache_get(stamp_key(name)) == stamp
        except Exception:
            unchanged = False  # the sync path loads the rows (and the tool call fails closed)
        if unchanged:
            return deployment
    return await sync_to_async(deployment_admit)(name=name, key=key, channel=channel)


async def deployment_admit_and_begin_async(
    *, name: str, key: str | None, channel: str, inputs: Any
) -> tuple[Deployment, RunDraft]:
    """`deployment_admit_and_begin` from the event loop (the HTTP call and the MCP tool call). A key
    this process admitted, of a deployment unchanged since, takes no thread and one cache round
    trip: the call is counted only if the deployment's stamp is still the one its entry was loaded
    under (checked in the same script). Any other call (a first one, a changed deployment, a
    refusal, a key's minutely touch, the cache unreachable) takes the sync path on a worker thread,
    which reads the stamp and rows anew."""
    kept = _kept_admission(name=name, key=key, channel=channel)
    if kept is not None:
        deployment, stamp = kept
        try:
            hit = await window_hit_async(
                _rate_key(deployment), window_s=RATE_WINDOW_S, guard=(stamp_key(name), stamp)
            )
        except RateLimitUnavailable:
            hit = None  # the sync path refuses a stale key first, then fails closed (503)
        if hit is not None:
            _rate_check(deployment, hit)
            return deployment, _call_draft(deployment, inputs)
    return await sync_to_async(deployment_admit_and_begin)(name=name, key=key, channel=channel, inputs=inputs)


def _kept_admission(*, name: str, key: str | None, channel: str) -> tuple[Deployment, str] | None:
    """The deployment of a key this process admitted, which the loop may admit while the stamp
    returned with it is the deployment's shared one; None: the sync path decides (no entry, a
    refusal, the key's touch due)."""
    kept = admitted_key_kept(name=name, key=key) if looks_like_key(key) else None
    if kept is None:
        return None
    matched, stamp = kept
    if _refusal(matched.deployment, name=name, channel=channel) is not None or _touch_due(matched):
        return None
    return matched.deployment, stamp


async def deployment_call_start(
    deployment: Deployment,
    draft: RunDraft,
    *,
    stream: bool = False,
    background: bool = False,
    on_finished: Finished | None = None,
) -> Run:
    """Starts the call's run (see `run_start`): 429 DeploymentRefused when the organization has its
    cap of runs in progress. Awaited: the finished run, or RunFailed (402 budget, 502/504 provider
    failures, ...) after recording it failed. With `background`: the stored run, at once. `stream`
    asks the provider for `llm.delta` events (for callers that follow the run's events)."""
    try:
        run, _ = await pinned_of(deployment).run_start(
            draft, name=deployment.name, stream=stream, background=background, on_finished=on_finished
        )
    except RunLimitReached as refused:
        raise DeploymentRefused(
            refused.status,
            refused.code,
            refused.message,
            fields=refused.fields,
            retry_after=refused.retry_after,
        ) from None
    return run


def call_result(run: Run) -> dict[str, Any]:
    """The response of a call: outputs, ids and usage."""
    return {
        "outputs": run.output,
        "run_id": run.pk,
        "trace_id": run.trace_id,
        "usage": {
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost_usd": float(run.cost_usd),
        },
    }


_OUTCOMES = {
    400: "invalid",
    413: "invalid",
    401: "unauthorized",
    403: "unauthorized",
    404: "not_found",
    429: "rate_limited",
}


def call_outcome(error: CodedError | None) -> str:
    """The metrics outcome of a call that ended with `error` (None: completed)."""
    if error is None:
        return "completed"
    if isinstance(error, RunFailed):
        return "failed"
    if error.code == "rate_limiter_unavailable":
        return "unavailable"
    return _OUTCOMES.get(error.status, "failed")


@finished_hook  # applied where the run ends: here, or by the worker with STUDIO_EXECUTION=queue
def call_finished(channel: str, error: CodedError | None = None) -> None:
    metrics.deployment_request(outcome=call_outcome(error), channel=channel_of(channel))
