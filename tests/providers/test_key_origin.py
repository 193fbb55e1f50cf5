"""A stored provider key goes only to the origin (scheme, host, port) it was given with.

The attacker is a second fake OpenAI server on another port: it records every request with its
Authorization header, and it accepts the victim's key, so a leak would even look like success."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import User
from observability.models import AuditLog
from observability.recorder import RunRecorder
from providers.crypto import decrypt_secret
from providers.gateway import StudioGateway
from providers.llm.types import CompletionRequest, InvalidApiKey, LLMCall, Message
from providers.models import APIProviderConfig
from tests.fakes.openai_server import FakeOpenAIServer
from tests.observability.factories import queued_run
from tests.providers.factories import make_provider_config

SECRET = "kz-live-secret-7f3a9c1e5b"
ATTACKER_KEY = "kz-attacker-own-key-0d1e"


@pytest.fixture(scope="module")
def attacker_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def attacker(attacker_server, settings) -> FakeOpenAIServer:
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    attacker_server.reset(api_key=SECRET)
    return attacker_server


@pytest.fixture
def provider_server(fake_openai, settings) -> FakeOpenAIServer:
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    fake_openai.reset(api_key=SECRET)
    return fake_openai


def authorizations(server: FakeOpenAIServer) -> list[str]:
    return [request.headers.get("Authorization", "") for request in server.requests]


def create_config(client, server, **fields) -> APIProviderConfig:
    body = {
        "provider": "openai",
        "name": "Team",
        "api_key": SECRET,
        "api_base_url": server.base_url,
        **fields,
    }
    response = client.post("/api/providers", body, format="json")
    assert response.status_code == 201, response.content
    return APIProviderConfig.objects.get(pk=response.json()["id"])


def patch(client, config, **body):
    return client.patch(f"/api/providers/{config.pk}", body, format="json")


# ---- through the API ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("validate", [True, False])
def test_pointing_a_config_at_another_host_without_its_key_is_refused_and_sends_nothing(
    validate, admin_client_, provider_server, attacker
):
    config = create_config(admin_client_, provider_server)

    response = patch(admin_client_, config, api_base_url=attacker.base_url, validate=validate)

    assert attacker.requests == []
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "api_key_required" and "api_key" in error["fields"]
    config.refresh_from_db()
    assert config.api_base_url == provider_server.base_url
    assert config.key_origin == provider_server.url  # http://127.0.0.1:port
    assert admin_client_.post(f"/api/providers/{config.pk}/validate").json()["valid"] is True
    assert attacker.requests == []


@pytest.mark.django_db
def test_another_scheme_or_port_is_another_origin(admin_client_, provider_server, attacker):
    config = create_config(admin_client_, provider_server)
    https_same_port = provider_server.base_url.replace("http://", "https://")
    for url in (https_same_port, attacker.base_url):
        response = patch(admin_client_, config, api_base_url=url, validate=False)
        assert response.status_code == 400 and response.json()["error"]["code"] == "api_key_required"
    assert attacker.requests == []


@pytest.mark.django_db
def test_a_new_host_with_the_key_in_the_same_request_is_accepted(admin_client_, provider_server, attacker):
    config = create_config(admin_client_, provider_server)
    before = len(provider_server.requests)
    attacker.reset(api_key=ATTACKER_KEY)  # a legitimate move to another provider, with its own key

    moved = patch(admin_client_, config, api_base_url=attacker.base_url, api_key=ATTACKER_KEY)
    assert moved.status_code == 200, moved.content
    assert admin_client_.post(f"/api/providers/{config.pk}/validate").json()["valid"] is True

    assert authorizations(attacker) == [f"Bearer {ATTACKER_KEY}"] * 2
    assert len(provider_server.requests) == before
    config.refresh_from_db()
    assert config.key_origin == attacker.url and decrypt_secret(config.api_key_encrypted) == ATTACKER_KEY


@pytest.mark.django_db
def test_another_path_on_the_same_origin_keeps_the_stored_key(admin_client_, provider_server):
    config = create_config(admin_client_, provider_server)
    response = patch(admin_client_, config, api_base_url=provider_server.base_url + "/")
    assert response.status_code == 200, response.content
    assert authorizations(provider_server)[-1] == f"Bearer {SECRET}"  # validated again, same server


@pytest.mark.django_db
def test_a_keyless_config_moves_freely_and_its_first_key_is_pinned_where_it_points(
    admin_client_, provider_server, attacker
):
    config = create_config(
        admin_client_, provider_server, provider="openai_compatible", api_key="", validate=False
    )
    assert patch(admin_client_, config, api_base_url=attacker.base_url, validate=False).status_code == 200
    assert patch(admin_client_, config, api_key=SECRET).status_code == 200
    config.refresh_from_db()
    assert config.key_origin == attacker.url


@pytest.mark.django_db
def test_an_azure_api_version_change_needs_the_key(admin_client_, organization, provider_server):
    config = make_provider_config(
        organization,
        provider="azure_openai",
        api_key=SECRET,
        api_base_url=provider_server.url,
        api_version="v1",
    )
    response = patch(admin_client_, config, api_version="v2", validate=False)
    assert response.status_code == 400 and response.json()["error"]["code"] == "api_key_required"
    assert patch(admin_client_, config, api_version="v2", api_key=SECRET, validate=False).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prefix", "suffix", "leaked"),
    [
        ("user:hunter2@", "/v1", "hunter2"),
        ("", "/v1?api_key=hunter2", "hunter2"),
        ("", "/v1#x9-anchor", "x9-anchor"),
    ],
)
def test_a_base_url_carrying_credentials_is_refused_on_create_and_update(
    prefix, suffix, leaked, admin_client_, provider_server
):
    url = f"http://{prefix}127.0.0.1:{provider_server.port}{suffix}"
    created = admin_client_.post(
        "/api/providers",
        {"provider": "openai", "name": "Leaky", "api_key": SECRET, "api_base_url": url},
        format="json",
    )
    config = create_config(admin_client_, provider_server)
    updated = patch(admin_client_, config, api_base_url=url, api_key=SECRET)

    for response in (created, updated):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "unsafe_provider_url" and "api_base_url" in error["fields"]
        assert leaked not in response.content.decode()
    assert list(APIProviderConfig.objects.values_list("api_base_url", flat=True)) == [
        provider_server.base_url
    ]


# ---- a base URL changed around the API ----------------------------------------------------------


@pytest.mark.django_db
def test_the_validate_endpoint_never_sends_the_key_to_a_url_changed_in_the_database(
    admin_client_, provider_server, attacker
):
    config = create_config(admin_client_, provider_server)
    APIProviderConfig.objects.filter(pk=config.pk).update(api_base_url=attacker.base_url)

    result = admin_client_.post(f"/api/providers/{config.pk}/validate").json()

    assert attacker.requests == []
    assert result["valid"] is False and SECRET not in str(result)
    renamed = patch(admin_client_, config, name="Renamed")  # does not pin the key to where it points now
    assert renamed.status_code == 200
    assert APIProviderConfig.objects.get(pk=config.pk).key_origin == provider_server.url


@pytest.mark.django_db
def test_an_operator_changing_the_url_in_the_admin_must_type_the_key_again(
    admin_client_, provider_server, attacker
):
    config = create_config(admin_client_, provider_server)
    operator = Client()
    operator.force_login(User.objects.create_superuser("root@example.com", "root-password-123"))
    form = {
        "organization": config.organization_id,
        "user": "",
        "provider": "openai",
        "name": config.name,
        "is_active": "on",
        "api_base_url": attacker.base_url,
        "api_version": "",
        "default_model": "",
        "budget_limit_usd": "",
        "pricing_overrides": "{}",
        "initial-pricing_overrides": "{}",
        "new_api_key": "",
    }
    url = f"/admin/providers/apiproviderconfig/{config.pk}/change/"

    assert operator.post(url, form).status_code == 302
    assert admin_client_.post(f"/api/providers/{config.pk}/validate").json()["valid"] is False
    assert attacker.requests == []

    assert operator.post(url, {**form, "new_api_key": SECRET}).status_code == 302  # given for this URL
    assert admin_client_.post(f"/api/providers/{config.pk}/validate").json()["valid"] is True
    assert authorizations(attacker) == [f"Bearer {SECRET}"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prefix", "suffix"), [("user:hunter2@", "/v1"), ("", "/v1?api_key=hunter2"), ("", "/v1#hunter2")]
)
def test_the_admin_refuses_a_base_url_carrying_credentials_too(
    prefix, suffix, admin_client_, provider_server
):
    config = create_config(admin_client_, provider_server)
    operator = Client()
    operator.force_login(User.objects.create_superuser("root@example.com", "root-password-123"))
    url = f"/admin/providers/apiproviderconfig/{config.pk}/change/"
    leaky = f"http://{prefix}127.0.0.1:{provider_server.port}{suffix}"
    form = {
        "organization": config.organization_id,
        "provider": "openai",
        "name": config.name,
        "is_active": "on",
        "api_base_url": leaky,
        "pricing_overrides": "{}",
        "initial-pricing_overrides": "{}",
    }

    response = operator.post(url, form)

    assert response.status_code == 200 and response.context["adminform"].form.errors["api_base_url"]
    assert APIProviderConfig.objects.get(pk=config.pk).api_base_url == provider_server.base_url
    assert not AuditLog.objects.filter(changes__api_base_url=leaky).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("llm_clients_closed")
async def test_an_llm_call_never_sends_the_key_to_a_url_changed_in_the_database(member, attacker, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    await sync_to_async(make_provider_config)(
        member.organization, provider="openai", api_key=SECRET, api_base_url="", is_default=True
    )  # given for the default OpenAI endpoint
    await APIProviderConfig.objects.filter(organization=member.organization).aupdate(
        api_base_url=attacker.base_url
    )
    run = await sync_to_async(queued_run)(
        organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={}
    )
    gateway = StudioGateway(run=run, recorder=RunRecorder(run))
    request = CompletionRequest(messages=(Message(role="user", content="hi"),), model="gpt-4o-mini")

    with pytest.raises(InvalidApiKey):
        await gateway.complete(LLMCall(request=request, provider_kind="openai"))
    assert attacker.requests == []
