"""A deployment call's admission and rate limit from the event loop
(deployments.calls.deployment_admit_and_begin_async): a key this process admitted takes no thread
and one cache round trip, which counts the call only while the deployment is unchanged; any change
written anywhere is still refused on the very next call, and nothing is counted for it."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.test import AsyncClient
from django.utils import timezone

from deployments import admission
from deployments.calls import (
    RATE_WINDOW_S,
    DeploymentRefused,
    deployment_admit_and_begin,
    deployment_admit_and_begin_async,
)
from deployments.models import Deployment, DeploymentKey
from studio.api import ratelimit
from tests.deployments.helpers import INPUTS, bearer, deploy
from tests.studio.test_redis_down import DEAD_REDIS

pytestmark = pytest.mark.django_db


def call(name, key, channel="api"):
    return async_to_sync(deployment_admit_and_begin_async)(name=name, key=key, channel=channel, inputs=INPUTS)


def refusal(name, key) -> tuple[int, str]:
    with pytest.raises(DeploymentRefused) as refused:
        call(name, key)
    return refused.value.status, refused.value.code


def counted(deployment: Deployment) -> int:
    """The calls counted in the deployment's current rate-limit window."""
    bucket, _ = ratelimit._window(f"deployment:{deployment.pk}", RATE_WINDOW_S)
    return cache.get(bucket) or 0


def another_process_writes(deployment: Deployment) -> None:
    """The deployment's stamp replaced through a cache client of another process's own."""
    stamp = uuid.uuid4().hex
    caches.create_connection("default").set(admission.stamp_key(deployment.name), stamp, timeout=None)


@pytest.fixture
def deployed(admin_user):
    return deploy(admin_user, name="support")


def test_a_kept_key_is_admitted_and_counted_without_a_thread_in_one_round_trip(
    deployed, thread_hops, redis_commands, django_assert_num_queries
):
    deployment, key = deployed
    call("support", key)  # the first call loads the entry on a worker thread
    assert thread_hops == ["deployment_admit_and_begin"]
    call("support", key)  # loads the script on a fresh Redis
    thread_hops.clear(), redis_commands.clear()
    with django_assert_num_queries(0):
        admitted, draft = call("support", key)
    assert admitted.pk == deployment.pk and draft.deployment_id == deployment.pk
    assert draft.input == INPUTS
    assert thread_hops == []
    assert redis_commands == (["EVALSHA"] if settings.REDIS_URL else [])
    assert counted(deployment) == 3


def test_the_loop_and_the_worker_thread_count_in_the_same_window(admin_user):
    deployment, key = deploy(admin_user, name="limited", rate_limit_per_minute=3)
    deployment_admit_and_begin(name="limited", key=key, channel="api", inputs=INPUTS)
    call("limited", key)
    call("limited", key)
    with pytest.raises(DeploymentRefused) as limited:
        call("limited", key)
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert 1 <= limited.value.retry_after <= RATE_WINDOW_S
    assert counted(deployment) == 4


def test_a_stop_written_by_another_process_is_refused_on_the_next_call_and_not_counted(deployed):
    deployment, key = deployed
    call("support", key)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.STOPPED)
    call("support", key)  # the stamp is unchanged: the entry holds
    another_process_writes(deployment)
    assert refusal("support", key) == (404, "not_found")
    assert counted(deployment) == 2
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.RUNNING)
    another_process_writes(deployment)
    call("support", key)
    assert counted(deployment) == 3


def test_a_key_revoked_by_another_process_is_refused_on_every_next_call_and_never_counted(deployed):
    deployment, key = deployed
    call("support", key)
    DeploymentKey.objects.filter(deployment=deployment).update(revoked_at=timezone.now())
    another_process_writes(deployment)
    for _ in range(3):
        assert refusal("support", key) == (401, "invalid_api_key")
    assert counted(deployment) == 1


def test_a_channel_turned_off_here_is_refused_on_the_next_call(deployed, admin_user):
    deployment, key = deployed
    call("support", key)
    deployment.channels = ["mcp"]
    deployment.save(update_fields=["channels"])
    assert refusal("support", key) == (404, "channel_off")


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS}
    }


def test_with_redis_down_a_kept_key_fails_closed_and_a_revoked_one_is_still_401(deployed, request):
    deployment, key = deployed
    call("support", key)  # kept while the cache was up
    request.getfixturevalue("redis_down")
    assert refusal("support", key) == (503, "rate_limiter_unavailable")
    DeploymentKey.objects.filter(deployment=deployment).update(revoked_at=timezone.now())
    assert refusal("support", key) == (401, "invalid_api_key")


# --- through the HTTP channel --------------------------------------------------------------------


def cache_or_admission_hops(hops: list[str]) -> list[str]:
    """The hops of a call that its admission, rate limit or breaker made (the ledger's are not)."""
    ours = ("deployment_admit", "_load", "CacheCircuitBreaker", "Redis")
    return [hop for hop in hops if hop.startswith(ours)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("llm_clients_closed")
async def test_a_call_over_http_admits_counts_and_checks_its_breaker_without_a_thread(
    admin_user, thread_hops
):
    deployment, key = await sync_to_async(deploy)(admin_user, name="support")
    client = AsyncClient()

    async def execute():
        response = await client.post(
            "/workflows/support/execute",
            json.dumps({"inputs": INPUTS}),
            content_type="application/json",
            headers=bearer(key),
        )
        assert response.status_code == 200, response.json()

    await execute()  # the first call loads the key's entry
    thread_hops.clear()
    await execute()
    assert thread_hops, "the ledger's writes still take a worker thread: the counting does count"
    assert cache_or_admission_hops(thread_hops) == []
