"""Expensive endpoints are throttled per organization (per client address before login): the
request past the scope's rate is a 429 `rate_limited` with Retry-After, in the standard envelope."""

from __future__ import annotations

import pytest

from observability.models import Run
from studio.api import ratelimit
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.conftest import client_for
from tests.orchestrations.helpers import make_agent as make_orchestration_agent
from tests.orchestrations.helpers import make_orchestration, says
from tests.providers.factories import make_provider_config

ANSWER = {"response": "We will refund you.", "priority": "high"}


@pytest.fixture
def rates(settings):
    """Sets the rate of some scopes for one test (the others keep their defaults)."""

    def set_rates(**scopes: str) -> None:
        framework = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {
            **framework,
            "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], **scopes},
        }

    return set_rates


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json() == {
        "error": {"code": "rate_limited", "message": response.json()["error"]["message"], "fields": {}}
    }
    # The clock is pinned one second into a minute: the window ends in 59 s.
    assert response["Retry-After"] == "59"


@pytest.mark.django_db(transaction=True)
def test_the_agent_test_call_past_the_rate_is_429_while_another_organization_still_runs(
    rates, member, other_org_owner
):
    rates(agent_test="3/min")
    agent = make_agent(member.organization, support_yaml(responses=[{"response": ANSWER}]))
    client = client_for(member)
    url = f"/api/agents/{agent.pk}/test"
    for _ in range(3):
        assert client.post(url, {"input": {"inquiry": "Refund?"}}, format="json").status_code == 200
    assert_throttled(client.post(url, {"input": {"inquiry": "Refund?"}}, format="json"))
    assert Run.objects.filter(organization=member.organization).count() == 3  # the 4th never ran

    other_agent = make_agent(other_org_owner.organization, support_yaml(responses=[{"response": ANSWER}]))
    other = client_for(other_org_owner).post(
        f"/api/agents/{other_agent.pk}/test", {"input": {"inquiry": "Refund?"}}, format="json"
    )
    assert other.status_code == 200, other.content


@pytest.mark.django_db(transaction=True)
def test_the_limit_is_per_organization_not_per_user(rates, member, owner):
    rates(agent_test="2/min")
    agent = make_agent(member.organization, support_yaml(responses=[{"response": ANSWER}]))
    url = f"/api/agents/{agent.pk}/test"
    body = {"input": {"inquiry": "Refund?"}}
    assert client_for(member).post(url, body, format="json").status_code == 200
    assert client_for(owner).post(url, body, format="json").status_code == 200
    assert_throttled(client_for(member).post(url, body, format="json"))
    assert_throttled(client_for(owner).post(url, body, format="json"))


@pytest.mark.django_db(transaction=True)
def test_the_next_window_accepts_calls_again(rates, member, monkeypatch):
    rates(agent_test="1/min")
    agent = make_agent(member.organization, support_yaml(responses=[{"response": ANSWER}]))
    url = f"/api/agents/{agent.pk}/test"
    client = client_for(member)
    body = {"input": {"inquiry": "Refund?"}}
    assert client.post(url, body, format="json").status_code == 200
    assert_throttled(client.post(url, body, format="json"))
    later = ratelimit.clock() + 60
    monkeypatch.setattr(ratelimit, "clock", lambda: later)
    assert client.post(url, body, format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_orchestration_executes_past_the_rate_are_429(rates, member):
    rates(orchestration_execute="2/min")
    agents = [
        make_orchestration_agent(
            member.organization, f"A{n}", responses=[says(answer="ok") for _ in range(3)]
        )
        for n in range(2)
    ]
    orchestration = make_orchestration(member.organization, "sequential", agents)
    client = client_for(member)
    url = f"/api/orchestrations/{orchestration.pk}/execute"
    for _ in range(2):
        response = client.post(url, {"input": {"text": "go"}}, format="json")
        assert response.status_code == 200, response.content
    assert_throttled(client.post(url, {"input": {"text": "go"}}, format="json"))


@pytest.mark.django_db
def test_provider_checks_past_the_rate_are_429(rates, admin_client_, organization, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    rates(provider_validate="2/min")
    config = make_provider_config(organization, api_base_url=fake_openai.base_url)
    url = f"/api/providers/{config.pk}/validate"
    assert admin_client_.post(url).status_code == 200
    assert admin_client_.post(url).status_code == 200
    assert_throttled(admin_client_.post(url))
    requests_seen = len(fake_openai.requests)
    # Creating a config also calls the provider with the key: the same scope.
    body = {
        "provider": "openai_compatible",
        "name": "Another",
        "api_key": "sk-x",
        "api_base_url": fake_openai.base_url,
    }
    assert_throttled(admin_client_.post("/api/providers", body, format="json"))
    assert len(fake_openai.requests) == requests_seen  # the provider was not called


@pytest.mark.django_db
def test_registrations_past_the_rate_from_one_address_are_429(rates, api_client):
    rates(register="2/hour")

    def register(n: int):
        body = {"org_name": f"Org {n}", "email": f"ada{n}@example.com", "password": "a-long-passphrase-1"}
        return api_client.post("/api/auth/register", body, format="json")

    assert register(1).status_code == 201
    assert register(2).status_code == 201
    third = register(3)
    assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limited"
    # One second into the hour: the window ends in 3599 s.
    assert third["Retry-After"] == "3599"


@pytest.mark.django_db
def test_logins_past_the_rate_from_one_address_are_429_whichever_the_account(rates, api_client):
    rates(login="3/min")
    for n in range(3):
        body = {"email": f"nobody{n}@example.com", "password": "wrong-password-1"}
        assert api_client.post("/api/auth/login", body, format="json").status_code == 401
    body = {"email": "nobody9@example.com", "password": "wrong-password-1"}
    assert_throttled(api_client.post("/api/auth/login", body, format="json"))
