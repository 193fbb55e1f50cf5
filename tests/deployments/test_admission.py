"""The admission of deployment calls from this process's entries (deployments.admission): no row is
read while the deployment is unchanged, and a change written anywhere (here, or by another process
through the shared cache) is refused on the very next call."""

from __future__ import annotations

import json

import httpx
import pytest
from django.conf import settings
from django.core.cache import caches
from django.utils import timezone

from accounts.models import Organization
from agents.services import agent_update
from deployments import admission
from deployments.calls import DeploymentRefused, deployment_admit
from deployments.models import Deployment, DeploymentKey
from deployments.services import (
    deployment_key_create,
    deployment_key_revoke,
    deployment_redeploy,
    deployment_start,
    deployment_stop,
)
from studio import stamps
from tests.agents.agent_configs import support_yaml
from tests.conftest import LIVE_CACHE_PREFIX
from tests.deployments.helpers import INPUTS, answering_agent, bearer, deploy


def admit(name, key, channel="api"):
    return deployment_admit(name=name, key=key, channel=channel)


def refusal(name, key) -> tuple[int, str]:
    with pytest.raises(DeploymentRefused) as refused:
        admit(name, key)
    return refused.value.status, refused.value.code


def another_process_writes(deployment: Deployment) -> None:
    """What another server process's write leaves behind: the deployment's stamp replaced in the
    shared cache, through a cache client of its own (the rows were written without this process's
    signals, by `.update()`)."""
    other_client = caches.create_connection("default")
    other_client.set(admission.KEYS.stamp_key(deployment.name), "written-elsewhere", timeout=None)


@pytest.fixture
def deployed(admin_user):
    return deploy(admin_user, name="support")


@pytest.mark.django_db
def test_an_admitted_key_is_served_from_the_process_without_reading_a_row(
    deployed, django_assert_num_queries
):
    deployment, key = deployed
    admit("support", key)  # loads the entry (and touches last_used_at)
    with django_assert_num_queries(0):
        again = admit("support", key)
    assert again.pk == deployment.pk and again.organization.pk == deployment.organization_id


@pytest.mark.django_db
def test_a_stop_written_by_another_process_is_refused_on_the_next_call(deployed):
    deployment, key = deployed
    admit("support", key)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.STOPPED)
    assert admit("support", key).pk == deployment.pk  # the stamp is unchanged: the entry holds
    another_process_writes(deployment)
    assert refusal("support", key) == (404, "not_found")


@pytest.mark.django_db
def test_a_key_revoked_by_another_process_is_refused_on_the_next_call(deployed):
    deployment, key = deployed
    admit("support", key)
    DeploymentKey.objects.filter(deployment=deployment).update(revoked_at=timezone.now())
    another_process_writes(deployment)
    assert refusal("support", key) == (401, "invalid_api_key")


@pytest.mark.django_db
def test_stop_start_revoke_suspension_and_redeploy_here_take_effect_on_the_next_call(deployed, admin_user):
    deployment, key = deployed
    admit("support", key)
    deployment_stop(user=admin_user, deployment=deployment)
    assert refusal("support", key) == (404, "not_found")
    deployment_start(user=admin_user, deployment=deployment)
    assert admit("support", key).is_running

    organization = Organization.objects.get(pk=deployment.organization_id)
    organization.status = Organization.Status.SUSPENDED
    organization.save(update_fields=["status"])
    assert refusal("support", key) == (403, "organization_suspended")
    organization.status = Organization.Status.ACTIVE
    organization.save(update_fields=["status"])

    v2 = {"response": "Version two answers.", "priority": "low"}
    agent_update(
        user=admin_user, agent=deployment.agent, config_yaml=support_yaml(responses=[{"response": v2}])
    )
    before = admit("support", key).pinned_version
    deployment_redeploy(user=admin_user, deployment=deployment)
    after = admit("support", key)
    assert after.pinned_version != before and "Version two answers." in json.dumps(after.pinned)

    new_key, new_secret = deployment_key_create(user=admin_user, deployment=deployment)
    old_key = DeploymentKey.objects.exclude(pk=new_key.pk).get(deployment=deployment)
    deployment_key_revoke(user=admin_user, deployment=deployment, key_id=old_key.pk)
    assert refusal("support", key) == (401, "invalid_api_key")
    assert admit("support", new_secret).pk == deployment.pk


@pytest.mark.django_db
def test_a_deleted_deployment_is_refused_on_the_next_call(admin_user):
    deployment, key = deploy(admin_user, name="support")
    admit("support", key)
    deployment_stop(user=admin_user, deployment=deployment)
    deployment.delete()
    assert refusal("support", key) == (401, "invalid_api_key")


@pytest.mark.django_db
def test_with_the_cache_down_every_call_reads_its_rows(deployed, monkeypatch):
    deployment, key = deployed
    admit("support", key)

    class Down:
        def __getattr__(self, name):
            raise ConnectionError("cache down")

    monkeypatch.setattr(stamps, "cache", Down())
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.STOPPED)
    assert refusal("support", key) == (404, "not_found")


@pytest.mark.django_db
def test_an_entry_expires_even_if_no_change_reaches_the_cache(deployed, monkeypatch):
    deployment, key = deployed
    admit("support", key)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.STOPPED)
    now = stamps.time.monotonic()
    monkeypatch.setattr(stamps.time, "monotonic", lambda: now + admission.KEYS.ttl_s + 1)
    assert refusal("support", key) == (404, "not_found")


@pytest.mark.django_db
def test_a_key_of_another_deployment_stays_refused(admin_user):
    _, key = deploy(admin_user, name="support")
    deploy(admin_user, agent=answering_agent(admin_user.organization, name="Other"), name="other")
    admit("support", key)
    assert refusal("other", key) == (401, "invalid_api_key")


# --- two processes --------------------------------------------------------------------------------


@pytest.fixture
def live_cache(settings):
    """This process's cache under the live server's key prefix, so both read the same stamps."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": LIVE_CACHE_PREFIX}}


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not settings.REDIS_URL, reason="processes share stamps through Redis (REDIS_URL)")
def test_writes_of_this_process_are_refused_by_a_server_process_on_its_next_call(
    daphne_server, admin_user, live_cache
):
    deployment, key = deploy(admin_user, name="live-admission")

    def call(secret):
        url = f"{daphne_server.url}/workflows/live-admission/execute"
        return httpx.post(url, json={"inputs": INPUTS}, headers=bearer(secret), timeout=30)

    assert call(key).status_code == 200
    assert call(key).status_code == 200  # admitted from the server's entry
    deployment_stop(user=admin_user, deployment=deployment)
    assert call(key).status_code == 404
    deployment_start(user=admin_user, deployment=deployment)
    assert call(key).status_code == 200

    new_key, new_secret = deployment_key_create(user=admin_user, deployment=deployment)
    deployment_key_revoke(
        user=admin_user, deployment=deployment, key_id=DeploymentKey.objects.exclude(pk=new_key.pk).get().pk
    )
    assert call(key).status_code == 401
    assert call(new_secret).status_code == 200

    organization = Organization.objects.get(pk=deployment.organization_id)
    organization.status = Organization.Status.SUSPENDED
    organization.save(update_fields=["status"])
    assert call(new_secret).status_code == 403
