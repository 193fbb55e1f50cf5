"""With Redis unreachable, the REST API and runs keep working from the database."""

from __future__ import annotations

import pytest

from observability.models import Run
from tests.accounts.factories import PASSWORD
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings):
    settings.REDIS_URL = DEAD_REDIS
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS}
    }
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [DEAD_REDIS]}}
    }


def test_agent_runs_work_without_redis_but_logins_fail_closed(redis_down, api_client, member):
    # login throttling cannot count without the cache, and an outage must not lift it
    right = api_client.post("/api/auth/login", {"email": member.email, "password": PASSWORD}, format="json")
    assert right.status_code == 503

    agent = make_agent(
        member.organization, support_yaml(responses=[{"response": {"response": "ok", "priority": "low"}}])
    )
    response = client_for(member).post(
        f"/api/agents/{agent.pk}/test", {"input": {"inquiry": "hi"}}, format="json"
    )
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.status == "completed" and run.events.count() == 4
    assert api_client.get("/api/health").status_code == 503
