"""Provider configs resolved from this process's entries (providers/config_cache.py): an LLM call
reads no row and decrypts no key while its organization's configs are unchanged, and a config
changed, its key replaced or rotated, deactivated or deleted, here or by another process (through
the shared cache), is used or refused on the very next call. The decrypted key never reaches the
shared cache."""

from __future__ import annotations

import pickle

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache, caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Organization
from observability.recorder import RunRecorder
from providers import config_cache, crypto, models
from providers.gateway import StudioGateway
from providers.llm.types import CompletionRequest, LLMCall, Message, ProviderNotConfigured
from providers.models import APIProviderConfig
from providers.services import (
    provider_config_delete,
    provider_config_update,
    provider_keys_rotate,
)
from studio import stamps
from tests.conftest import CACHE_PREFIX, _redis
from tests.observability.factories import queued_run
from tests.providers.factories import make_provider_config

SECRET = "sk-cached-secret-0001"
KIND = "openai_compatible"
BASE_URL = "http://127.0.0.1:9/v1"  # never called: the tests resolve, they send nothing


@pytest.fixture
def private_urls(settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True


@pytest.fixture
def decryptions(monkeypatch):
    """How many times a stored key is decrypted."""
    count = {"n": 0}
    real = models.decrypt_secret

    def counting(token):
        count["n"] += 1
        return real(token)

    monkeypatch.setattr(models, "decrypt_secret", counting)
    return count


def gateway(user) -> StudioGateway:
    run = queued_run(organization_id=user.organization_id, user_id=user.pk, kind="agent_test", input={})
    return StudioGateway(run=run, recorder=RunRecorder(run))


def call(provider_id=None) -> LLMCall:
    request = CompletionRequest(messages=(Message(role="user", content="Hi"),), model="gpt-4o-mini")
    return LLMCall(request=request, provider_kind=KIND, provider_id=provider_id)


def resolve(user, provider_id=None, *, through=None):
    """The config and settings the next call of `user` uses (the gateway's own lookup)."""
    return (through or gateway(user))._provider(call(provider_id))


def another_process_writes(organization_id: str) -> None:
    """What another server process's write leaves behind: the organization's stamp replaced in
    the shared cache, through a cache client of its own (the row itself written by `.update()`,
    which sends no signal here)."""
    other_client = caches.create_connection("default")
    other_client.set(config_cache.CONFIGS.stamp_key(organization_id), "elsewhere", timeout=None)


@pytest.fixture
def config(admin_user, private_urls):
    organization = admin_user.organization
    return make_provider_config(organization, api_key=SECRET, api_base_url=BASE_URL, is_default=True)


@pytest.mark.django_db
def test_a_resolved_config_is_served_from_the_process_without_a_row_or_a_decryption(
    admin_user, config, decryptions
):
    first, settings = resolve(admin_user)
    assert first.pk == config.pk and settings.api_key == SECRET and decryptions["n"] == 1
    through = gateway(admin_user)
    with CaptureQueriesContext(connection) as queries:
        again, settings = resolve(admin_user, through=through)
    assert len(queries) == 0 and decryptions["n"] == 1
    assert again.pk == config.pk and settings.api_key == SECRET


@pytest.mark.django_db
def test_a_change_written_by_another_process_is_used_on_the_next_call(admin_user, config):
    resolve(admin_user)
    APIProviderConfig.objects.filter(pk=config.pk).update(
        api_key_encrypted=crypto.encrypt_secret("sk-new-elsewhere"), default_model="gpt-4o"
    )
    assert resolve(admin_user)[1].api_key == SECRET  # the stamp is unchanged: the entry holds
    another_process_writes(admin_user.organization_id)
    _, settings = resolve(admin_user)
    assert settings.api_key == "sk-new-elsewhere" and settings.default_model == "gpt-4o"


@pytest.mark.django_db
def test_a_config_deactivated_by_another_process_is_refused_on_the_next_call(admin_user, config):
    resolve(admin_user)
    resolve(admin_user, config.pk)
    APIProviderConfig.objects.filter(pk=config.pk).update(is_active=False)
    another_process_writes(admin_user.organization_id)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user, config.pk)


@pytest.mark.django_db
def test_updates_deactivation_and_deletion_here_take_effect_on_the_next_call(admin_user, config):
    resolve(admin_user)
    provider_config_update(actor=admin_user, config=config, api_key="sk-replaced-0002", validate=False)
    assert resolve(admin_user)[1].api_key == "sk-replaced-0002"

    provider_config_update(actor=admin_user, config=config, budget_limit_usd="5", validate=False)
    assert resolve(admin_user)[0].budget_limit_usd == 5

    provider_config_update(actor=admin_user, config=config, is_active=False, validate=False)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)
    provider_config_update(actor=admin_user, config=config, is_active=True, validate=False)
    assert resolve(admin_user)[0].pk == config.pk

    provider_config_delete(actor=admin_user, config=config)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)


@pytest.mark.django_db
def test_a_new_default_is_used_on_the_next_call(admin_user, config):
    resolve(admin_user)
    organization = admin_user.organization
    newer = make_provider_config(organization, api_key="sk-newer", api_base_url=BASE_URL, name="newer")
    provider_config_update(actor=admin_user, config=newer, is_default=True, validate=False)
    assert resolve(admin_user)[0].pk == newer.pk


@pytest.mark.django_db
def test_key_rotation_and_organization_writes_replace_the_stamp(admin_user, config, settings):
    resolve(admin_user)
    stamp = cache.get(config_cache.CONFIGS.stamp_key(admin_user.organization_id))
    settings.FERNET_KEYS = [crypto.Fernet.generate_key().decode(), *settings.FERNET_KEYS]
    assert provider_keys_rotate() == 1
    rotated = cache.get(config_cache.CONFIGS.stamp_key(admin_user.organization_id))
    assert rotated != stamp
    assert resolve(admin_user)[1].api_key == SECRET

    organization = Organization.objects.get(pk=admin_user.organization_id)
    organization.save()
    assert cache.get(config_cache.CONFIGS.stamp_key(admin_user.organization_id)) != rotated


@pytest.mark.django_db
def test_another_organizations_write_leaves_the_entry_in_place(admin_user, config, other_org_owner):
    resolve(admin_user)
    make_provider_config(other_org_owner.organization, api_key="sk-other", is_default=True)
    through = gateway(admin_user)
    with CaptureQueriesContext(connection) as queries:
        resolve(admin_user, through=through)
    assert len(queries) == 0


@pytest.mark.django_db
def test_with_the_cache_down_every_call_reads_its_rows(admin_user, config, monkeypatch, decryptions):
    resolve(admin_user)

    class Down:
        def __getattr__(self, name):
            raise ConnectionError("cache down")

    monkeypatch.setattr(stamps, "cache", Down())
    APIProviderConfig.objects.filter(pk=config.pk).update(is_active=False)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)
    APIProviderConfig.objects.filter(pk=config.pk).update(is_active=True)
    before = decryptions["n"]
    resolve(admin_user)
    resolve(admin_user)
    assert decryptions["n"] == before + 2


@pytest.mark.django_db
def test_an_entry_expires_even_if_no_change_reaches_the_cache(admin_user, config, monkeypatch):
    resolve(admin_user)
    APIProviderConfig.objects.filter(pk=config.pk).update(is_active=False)
    monkeypatch.setattr(config_cache.CONFIGS, "ttl_s", 0.0)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)


@pytest.mark.django_db
def test_the_decrypted_key_never_reaches_the_shared_cache(admin_user, config):
    resolve(admin_user)
    resolve(admin_user, config.pk)
    stored = _cache_values()
    assert stored, "the stamp at least is in the cache"
    assert not any(SECRET.encode() in value for value in stored)


def _cache_values() -> list[bytes]:
    client = _redis()
    if client is not None:
        return [client.get(key) or b"" for key in client.scan_iter(match=f"{CACHE_PREFIX}*")]
    return [pickle.dumps(value) if not isinstance(value, bytes) else value for value in cache._cache.values()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("llm_clients_closed")
async def test_a_replaced_key_is_sent_on_the_very_next_call(admin_user, fake_openai, private_urls):
    config = await sync_to_async(make_provider_config)(
        admin_user.organization, api_base_url=fake_openai.base_url, is_default=True
    )
    for _ in range(2):
        await (await sync_to_async(gateway)(admin_user)).complete(call())
    assert fake_openai.requests[-1].headers["Authorization"] == "Bearer test-key"
    fake_openai.reset(api_key="sk-replaced-0003")  # the provider now takes the new key only
    await sync_to_async(provider_config_update)(
        actor=admin_user, config=config, api_key="sk-replaced-0003", validate=False
    )
    completion = await (await sync_to_async(gateway)(admin_user)).complete(call())
    assert completion.text
    assert fake_openai.requests[-1].headers["Authorization"] == "Bearer sk-replaced-0003"


@pytest.mark.django_db
def test_a_personal_config_is_never_served_to_another_user_from_an_entry(admin_user, member, private_urls):
    organization = member.organization
    personal = make_provider_config(organization, api_key="sk-personal", api_base_url=BASE_URL, user=member)
    assert resolve(member, personal.pk)[1].api_key == "sk-personal"
    assert resolve(member, personal.pk)[1].api_key == "sk-personal"  # from the member's entry
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user, personal.pk)
    with pytest.raises(ProviderNotConfigured):
        resolve(admin_user)
