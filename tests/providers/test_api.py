"""The providers API: key validation on create and update, roles, visibility, isolation, defaults,
usage from the ledger, base URL safety, and the key never leaving the server."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

import pytest

from observability.models import AuditLog, Run, Span
from observability.sql import period_window
from providers.budgets import current_month
from providers.crypto import decrypt_secret
from providers.models import APIProviderConfig, BudgetCounter
from tests.accounts.factories import make_user
from tests.api_cases import APIResourceCases, Call
from tests.conftest import client_for
from tests.fakes.behaviours import status
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db

SECRET = "kz-live-secret-7f3a9c1e5b"  # not shaped like a provider key: only exact redaction hides it
WRONG_SECRET = "kz-wrong-secret-2d8e4f6a0c"
MOCK = {"provider": "mock", "name": "Offline mock"}


@pytest.fixture
def private_urls(settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True


@pytest.fixture
def openai_server(fake_openai, private_urls):
    fake_openai.reset(api_key=SECRET)
    return fake_openai


@pytest.fixture
def anthropic_server(fake_anthropic, private_urls):
    fake_anthropic.reset(api_key=SECRET)
    return fake_anthropic


def create(client, **body):
    return client.post("/api/providers", body, format="json")


def openai_body(server, **fields):
    return {
        "provider": "openai_compatible",
        "name": "Team OpenAI",
        "api_key": SECRET,
        "api_base_url": server.base_url,
        **fields,
    }


def error_code(response) -> str:
    return response.json()["error"]["code"]


class TestProviderConfigAPI(APIResourceCases):
    list_path = "/api/providers"
    detail_path = "/api/providers/{pk}"
    reads = (Call("GET", "/api/providers/{pk}/usage"),)
    writes = (
        Call("POST", "/api/providers", {**MOCK, "personal": True}),
        Call("PATCH", "/api/providers/{pk}", {"name": "Stolen"}),
        Call("POST", "/api/providers/{pk}/validate"),
        Call("DELETE", "/api/providers/{pk}"),
    )
    list_queries = 2  # user, the page with its count and this month's spend
    detail_queries = 2  # user, the config with this month's spend

    def make(self, organization):
        config = make_provider_config(organization, provider="mock", api_key="")
        BudgetCounter.objects.create(organization=organization, subject=config.pk, month=current_month())
        return config


# ---- create validates the key -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "server_name", "models"),
    [
        ("openai_compatible", "openai_server", ["gpt-4o", "gpt-4o-mini"]),
        ("openai", "openai_server", ["gpt-4o", "gpt-4o-mini"]),
        ("anthropic", "anthropic_server", ["claude-haiku-4-5", "claude-sonnet-4-5"]),
    ],
)
def test_create_checks_the_key_with_the_provider_and_stores_it_encrypted(
    kind, server_name, models, request, admin_client_, admin_user
):
    server = request.getfixturevalue(server_name)
    response = create(admin_client_, **openai_body(server, provider=kind))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provider"] == kind and body["key_hint"] == SECRET[-4:]
    assert body["user_id"] is None and body["created_by_id"] == admin_user.pk
    assert body["current_spend_usd"] == 0
    assert "api_key" not in body and "api_key_encrypted" not in body
    config = APIProviderConfig.objects.get(pk=body["id"])
    assert config.api_key_encrypted != SECRET and decrypt_secret(config.api_key_encrypted) == SECRET
    assert [r.path for r in server.requests] == ["/v1/models"]
    assert admin_client_.post(f"/api/providers/{config.pk}/validate").json()["models"] == models


def test_create_with_a_key_the_provider_rejects_is_a_400_and_stores_nothing(admin_client_, openai_server):
    response = create(admin_client_, **openai_body(openai_server, api_key=WRONG_SECRET))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "Incorrect API key provided" in error["message"]  # the provider's reason
    assert "api_key" in error["fields"]
    assert WRONG_SECRET not in response.content.decode()
    assert not APIProviderConfig.objects.exists()
    assert not AuditLog.objects.filter(model_name="APIProviderConfig").exists()


def test_a_failing_provider_is_not_reported_as_a_bad_key(admin_client_, openai_server):
    openai_server.enqueue(status(500), status(500))  # the first try and its one retry
    response = create(admin_client_, **openai_body(openai_server))
    assert response.status_code == 502 and error_code(response) == "provider_error"
    assert "could not be validated" in response.json()["error"]["message"]
    assert not APIProviderConfig.objects.exists()


def test_validate_false_stores_an_unchecked_key_for_admins_only(admin_client_, auth_client, openai_server):
    refused = create(auth_client, **openai_body(openai_server, personal=True, validate=False))
    assert refused.status_code == 403 and not APIProviderConfig.objects.exists()

    stored = create(admin_client_, **openai_body(openai_server, api_key=WRONG_SECRET, validate=False))
    assert stored.status_code == 201, stored.content
    assert openai_server.requests == []
    row = AuditLog.objects.get(operation_type="create", record_id=stored.json()["id"])
    assert row.changes["validated"] is False


def test_a_key_is_required_except_for_kinds_that_need_none(admin_client_):
    response = create(admin_client_, provider="anthropic", name="No key", validate=False)
    assert response.status_code == 400 and "api_key" in response.json()["error"]["fields"]
    missing_url = create(admin_client_, provider="openai_compatible", name="Where?", api_key=SECRET)
    assert missing_url.status_code == 400 and "api_base_url" in missing_url.json()["error"]["fields"]
    mock = create(admin_client_, **MOCK)
    assert mock.status_code == 201 and mock.json()["key_hint"] == ""
    assert not APIProviderConfig.objects.exclude(provider="mock").exists()


def test_pricing_overrides_and_budget_are_checked_and_stored(admin_client_):
    bad = create(admin_client_, **MOCK, pricing_overrides={"mock-1": {"input": "cheap"}})
    assert bad.status_code == 400 and "pricing_overrides" in bad.json()["error"]["fields"]
    negative = create(admin_client_, **MOCK, budget_limit_usd=-1)
    assert negative.status_code == 400 and "budget_limit_usd" in negative.json()["error"]["fields"]
    overrides = {"mock-1": {"input": 1, "output": 2}}
    body = create(admin_client_, **MOCK, pricing_overrides=overrides, budget_limit_usd="12.5").json()
    assert body["pricing_overrides"] == overrides and body["budget_limit_usd"] == 12.5


# ---- validate and update ----------------------------------------------------------------------


def test_validate_reports_the_provider_verdict_on_the_stored_key(auth_client, organization, openai_server):
    config = make_provider_config(organization, api_key=SECRET, api_base_url=openai_server.base_url)
    valid = auth_client.post(f"/api/providers/{config.pk}/validate")
    assert valid.status_code == 200
    assert valid.json()["valid"] is True and valid.json()["error"] is None
    assert valid.json()["models"] == ["gpt-4o", "gpt-4o-mini"] and valid.json()["latency_ms"] >= 0

    openai_server.reset(api_key="revoked-at-the-provider")
    revoked = auth_client.post(f"/api/providers/{config.pk}/validate").json()
    assert revoked["valid"] is False and revoked["models"] == []
    assert "rejected the API key" in revoked["error"] and SECRET not in revoked["error"]


def test_changing_the_key_validates_it_again(admin_client_, organization, openai_server):
    config = make_provider_config(organization, api_key=SECRET, api_base_url=openai_server.base_url)
    url = f"/api/providers/{config.pk}"

    rejected = admin_client_.patch(url, {"api_key": WRONG_SECRET}, format="json")
    assert rejected.status_code == 400 and error_code(rejected) == "invalid_api_key"
    config.refresh_from_db()
    assert decrypt_secret(config.api_key_encrypted) == SECRET and config.key_hint == SECRET[-4:]

    new_secret = "kz-rotated-secret-99aa"
    openai_server.reset(api_key=new_secret)
    accepted = admin_client_.patch(url, {"api_key": new_secret}, format="json")
    assert accepted.status_code == 200 and accepted.json()["key_hint"] == "99aa"
    assert len(openai_server.requests) == 1
    config.refresh_from_db()
    assert decrypt_secret(config.api_key_encrypted) == new_secret
    row = AuditLog.objects.get(operation_type="update", record_id=config.pk)
    assert row.changes == {"api_key": "[redacted]", "key_hint": "99aa"}


def test_changing_other_fields_makes_no_provider_call(admin_client_, organization, openai_server):
    config = make_provider_config(organization, api_key=SECRET, api_base_url=openai_server.base_url)
    response = admin_client_.patch(
        f"/api/providers/{config.pk}",
        {"name": "Renamed", "budget_limit_usd": 5, "is_active": False},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed" and response.json()["is_active"] is False
    assert openai_server.requests == []
    row = AuditLog.objects.get(operation_type="update", record_id=config.pk)
    assert row.changes == {"name": "Renamed", "budget_limit_usd": 5.0, "is_active": False}


def test_detail_shows_this_months_spend(auth_client, organization):
    config = make_provider_config(organization, provider="mock", api_key="")
    BudgetCounter.objects.create(
        organization=organization, subject=config.pk, month=current_month(), spent_usd=Decimal("1.25")
    )
    last_month = current_month() - dt.timedelta(days=1)
    BudgetCounter.objects.create(
        organization=organization, subject=config.pk, month=last_month.replace(day=1), spent_usd=9
    )
    assert auth_client.get(f"/api/providers/{config.pk}").json()["current_spend_usd"] == 1.25


def test_delete_removes_the_config_and_audits_it(admin_client_, organization):
    config = make_provider_config(organization, provider="mock", api_key="")
    assert admin_client_.delete(f"/api/providers/{config.pk}").status_code == 204
    assert not APIProviderConfig.objects.filter(pk=config.pk).exists()
    assert AuditLog.objects.filter(operation_type="delete", record_id=config.pk).exists()


# ---- defaults ---------------------------------------------------------------------------------


def test_a_new_default_takes_over_from_the_previous_one_of_its_kind(admin_client_, organization):
    first = make_provider_config(organization, provider="mock", api_key="", is_default=True)
    other_kind = make_provider_config(organization, provider="anthropic", is_default=True)

    second = create(admin_client_, **MOCK, is_default=True)
    assert second.status_code == 201 and second.json()["is_default"] is True
    first.refresh_from_db()
    other_kind.refresh_from_db()
    assert first.is_default is False and other_kind.is_default is True
    assert AuditLog.objects.filter(record_id=first.pk, changes={"is_default": False}).exists()

    back = admin_client_.patch(f"/api/providers/{first.pk}", {"is_default": True}, format="json")
    assert back.status_code == 200
    assert list(
        APIProviderConfig.objects.filter(provider="mock", is_default=True).values_list("pk", flat=True)
    ) == [first.pk]


def test_a_personal_config_cannot_be_the_organizations_default(auth_client):
    response = create(auth_client, **MOCK, personal=True, is_default=True)
    assert response.status_code == 400 and "is_default" in response.json()["error"]["fields"]
    assert not APIProviderConfig.objects.exists()


# ---- roles and visibility ---------------------------------------------------------------------


def test_members_manage_only_their_personal_configs(auth_client, member, organization):
    org_wide = make_provider_config(organization, provider="mock", api_key="")
    assert create(auth_client, **MOCK).status_code == 403
    assert auth_client.patch(f"/api/providers/{org_wide.pk}", {"name": "x"}, format="json").status_code == 403
    assert auth_client.delete(f"/api/providers/{org_wide.pk}").status_code == 403

    personal = create(auth_client, **MOCK, personal=True)
    assert personal.status_code == 201 and personal.json()["user_id"] == member.pk
    url = f"/api/providers/{personal.json()['id']}"
    assert auth_client.patch(url, {"name": "Mine"}, format="json").json()["name"] == "Mine"
    assert auth_client.delete(url).status_code == 204
    assert list(APIProviderConfig.objects.values_list("pk", flat=True)) == [org_wide.pk]


def test_admins_manage_organization_wide_configs(admin_client_):
    created = create(admin_client_, **MOCK)
    assert created.status_code == 201 and created.json()["user_id"] is None
    url = f"/api/providers/{created.json()['id']}"
    assert admin_client_.patch(url, {"name": "Shared"}, format="json").status_code == 200
    assert admin_client_.delete(url).status_code == 204


def test_a_personal_config_is_invisible_to_everyone_else(member, organization, admin_client_):
    personal = make_provider_config(organization, provider="mock", api_key="", user=member)
    shared = make_provider_config(organization, provider="mock", api_key="", name="Shared")
    colleague = client_for(make_user(organization, role="member"))

    for client in (colleague, admin_client_):
        assert [row["id"] for row in client.get("/api/providers").json()["results"]] == [shared.pk]
        assert client.get(f"/api/providers/{personal.pk}").status_code == 404
        assert client.patch(f"/api/providers/{personal.pk}", {"name": "x"}, format="json").status_code == 404
        assert client.delete(f"/api/providers/{personal.pk}").status_code == 404
    owner_view = client_for(member).get("/api/providers").json()["results"]
    assert {row["id"] for row in owner_view} == {personal.pk, shared.pk}


def test_list_filters_by_kind_and_activity(auth_client, organization):
    make_provider_config(organization, provider="mock", api_key="", name="Mock")
    make_provider_config(organization, provider="anthropic", name="Claude", is_active=False)

    def names(query):
        return [row["name"] for row in auth_client.get(f"/api/providers?{query}").json()["results"]]

    assert names("provider=mock") == ["Mock"]
    assert names("is_active=false") == ["Claude"]
    assert names("") == ["Claude", "Mock"]
    assert auth_client.get("/api/providers?provider=nonsense").status_code == 400


# ---- usage --------------------------------------------------------------------------------------


def _llm_call(config, run, *, at, model, tokens_in, tokens_out, cost, **fields):
    fields = {"organization_id": config.organization_id, "provider_id": config.pk, "kind": "llm", **fields}
    return Span.objects.create(
        run=run,
        name=f"{config.provider}:{model}",
        model=model,
        started_at=at,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=Decimal(cost),
        **fields,
    )


def test_usage_sums_the_configs_llm_calls_by_day_and_model(auth_client, organization, other_org_owner):
    config = make_provider_config(organization, provider="mock", api_key="", budget="50")
    other = make_provider_config(organization, provider="mock", api_key="", name="Other")
    run = Run.objects.create(organization=organization, kind="agent_test")
    start, _ = period_window("month")
    day_one, day_two = start + dt.timedelta(hours=1), start + dt.timedelta(days=1, hours=2)
    _llm_call(config, run, at=day_one, model="gpt-4o", tokens_in=100, tokens_out=50, cost="0.001")
    _llm_call(config, run, at=day_one, model="gpt-4o-mini", tokens_in=10, tokens_out=5, cost="0.0001")
    _llm_call(config, run, at=day_two, model="gpt-4o", tokens_in=200, tokens_out=100, cost="0.002")
    # None of these count: another config, not an llm span, before the period, another organization.
    _llm_call(other, run, at=day_one, model="gpt-4o", tokens_in=7, tokens_out=7, cost="1")
    _llm_call(config, run, at=day_one, model="gpt-4o", tokens_in=7, tokens_out=7, cost="1", kind="agent")
    _llm_call(
        config, run, at=start - dt.timedelta(hours=1), model="gpt-4o", tokens_in=7, tokens_out=7, cost="1"
    )
    foreign_run = Run.objects.create(organization=other_org_owner.organization, kind="agent_test")
    _llm_call(
        config,
        foreign_run,
        at=day_one,
        model="gpt-4o",
        tokens_in=7,
        tokens_out=7,
        cost="1",
        organization_id=other_org_owner.organization_id,
    )
    BudgetCounter.objects.create(
        organization=organization, subject=config.pk, month=current_month(), spent_usd=Decimal("0.0031")
    )

    usage = auth_client.get(f"/api/providers/{config.pk}/usage?period=month").json()

    assert usage["period"] == "month" and usage["start"] == start.isoformat().replace("+00:00", "Z")
    assert (usage["executions"], usage["input_tokens"], usage["output_tokens"]) == (3, 310, 155)
    assert usage["cost_usd"] == pytest.approx(0.0031)
    assert usage["budget_limit_usd"] == 50 and usage["current_spend_usd"] == pytest.approx(0.0031)
    assert [(d["date"], d["executions"], d["input_tokens"], d["output_tokens"]) for d in usage["by_day"]] == [
        (day_one.date().isoformat(), 2, 110, 55),
        (day_two.date().isoformat(), 1, 200, 100),
    ]
    assert [d["cost_usd"] for d in usage["by_day"]] == pytest.approx([0.0011, 0.002])
    assert [
        (m["model"], m["executions"], m["input_tokens"], m["output_tokens"]) for m in usage["by_model"]
    ] == [
        ("gpt-4o", 2, 300, 150),
        ("gpt-4o-mini", 1, 10, 5),
    ]


def test_usage_of_a_quiet_period_is_zero(auth_client, organization):
    config = make_provider_config(organization, provider="mock", api_key="")
    usage = auth_client.get(f"/api/providers/{config.pk}/usage?period=day").json()
    assert (usage["executions"], usage["cost_usd"], usage["by_day"], usage["by_model"]) == (0, 0, [], [])
    assert usage["budget_limit_usd"] is None and usage["current_spend_usd"] == 0


@pytest.mark.parametrize("period", ["decade", "7d", "MONTH"])
def test_usage_refuses_an_unknown_period(period, auth_client, organization):
    config = make_provider_config(organization, provider="mock", api_key="")
    response = auth_client.get(f"/api/providers/{config.pk}/usage?period={period}")
    assert response.status_code == 400 and "period" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("day", "2024-03-01", "2024-03-02"),
        ("week", "2024-02-26", "2024-03-04"),
        ("month", "2024-03-01", "2024-04-01"),
        ("year", "2024-01-01", "2025-01-01"),
    ],
)
def test_periods_are_calendar_periods_in_utc(period, start, end):
    late_on_feb_29_in_new_york = dt.datetime(2024, 2, 29, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    bounds = period_window(period, now=late_on_feb_29_in_new_york)  # already Friday, March 1 in UTC
    assert [moment.isoformat() for moment in bounds] == [f"{start}T00:00:00+00:00", f"{end}T00:00:00+00:00"]


def test_december_ends_at_the_new_year():
    start, end = period_window("month", now=dt.datetime(2024, 12, 31, 12, tzinfo=dt.UTC))
    assert (start.date(), end.date()) == (dt.date(2024, 12, 1), dt.date(2025, 1, 1))


# ---- base URL safety ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v1",
        "https://127.0.0.1/v1",
        "https://10.0.0.5/v1",
        "https://169.254.169.254/latest",
        "https://[::1]/v1",
        "https://localhost/v1",
        "ftp://api.example.com",
    ],
)
def test_a_base_url_into_our_own_network_is_refused(url, admin_client_, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    response = create(
        admin_client_, provider="openai_compatible", name="SSRF", api_key=SECRET, api_base_url=url
    )
    assert response.status_code == 400
    assert (
        error_code(response) == "unsafe_provider_url" and "api_base_url" in response.json()["error"]["fields"]
    )
    assert not APIProviderConfig.objects.exists()


def test_an_unsafe_base_url_is_refused_on_update_too(admin_client_, organization, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    config = make_provider_config(organization, provider="openai", api_key=SECRET)
    response = admin_client_.patch(
        f"/api/providers/{config.pk}",
        {"api_base_url": "https://169.254.169.254/", "validate": False},
        format="json",
    )
    assert response.status_code == 400 and error_code(response) == "unsafe_provider_url"
    config.refresh_from_db()
    assert config.api_base_url == ""


# ---- the key never leaves ------------------------------------------------------------------------


def test_the_key_appears_in_no_response_audit_row_or_log_line(admin_client_, openai_server, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = []

    def call(response):
        bodies.append(response.content.decode())
        return response

    call(create(admin_client_, **openai_body(openai_server)))
    config = APIProviderConfig.objects.get()
    url = f"/api/providers/{config.pk}"
    call(admin_client_.get("/api/providers"))
    call(admin_client_.get(url))
    call(admin_client_.post(f"{url}/validate"))
    call(admin_client_.patch(url, {"api_key": WRONG_SECRET}, format="json"))  # rejected
    call(admin_client_.patch(url, {"api_key": SECRET, "name": "Renamed"}, format="json"))
    call(create(admin_client_, **openai_body(openai_server, api_key=WRONG_SECRET)))
    openai_server.reset(api_key="something-else")
    call(admin_client_.post(f"{url}/validate"))

    assert [body.count('"key_hint"') > 0 for body in bodies[:3]] == [True, True, True]
    audit = json.dumps(list(AuditLog.objects.values("changes")))
    assert "api_key" in audit  # the change of key is recorded, as a marker
    for secret in (SECRET, WRONG_SECRET, config.api_key_encrypted):
        assert all(secret not in body for body in bodies)
        assert secret not in audit
        assert secret not in caplog.text
