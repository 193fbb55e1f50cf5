"""The operators' admin of provider configs (key never shown, write-only replacement) and budgets."""

from __future__ import annotations

import json
import logging

import pytest

from observability.models import AuditLog
from providers.budgets import current_month
from providers.crypto import decrypt_secret
from providers.models import APIProviderConfig, BudgetCounter
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db

SECRET = "kz-admin-secret-5e6f7a8b"
NEW_SECRET = "kz-admin-new-secret-1c2d"


@pytest.fixture
def config(organization):
    return make_provider_config(organization, provider="anthropic", api_key=SECRET, name="Claude")


def change_form(config: APIProviderConfig, **fields) -> dict:
    return {
        "organization": config.organization_id,
        "user": "",
        "provider": config.provider,
        "name": config.name,
        "is_active": "on",
        "api_base_url": "",
        "api_version": "",
        "default_model": "",
        "budget_limit_usd": "",
        "pricing_overrides": "{}",
        "initial-pricing_overrides": "{}",  # sent by the browser: the model default is a callable
        "new_api_key": "",
        **fields,
    }


def test_list_and_change_pages_show_the_hint_never_the_key(operator_browser, config):
    listing = operator_browser.get("/admin/providers/apiproviderconfig/?q=Claude").content.decode()
    page = operator_browser.get(f"/admin/providers/apiproviderconfig/{config.pk}/change/").content.decode()

    assert "Claude" in listing and SECRET[-4:] in listing
    assert 'name="new_api_key"' in page and 'type="password"' in page
    for html in (listing, page):
        assert SECRET not in html and config.api_key_encrypted not in html
    assert "api_key_encrypted" not in page


def test_a_new_key_typed_in_is_encrypted_audited_and_never_rendered_back(operator_browser, config, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"/admin/providers/apiproviderconfig/{config.pk}/change/"

    invalid = operator_browser.post(url, change_form(config, name="", new_api_key=NEW_SECRET))
    assert invalid.status_code == 200 and NEW_SECRET not in invalid.content.decode()  # form re-shown
    config.refresh_from_db()
    assert decrypt_secret(config.api_key_encrypted) == SECRET

    saved = operator_browser.post(url, change_form(config, name="Claude team", new_api_key=NEW_SECRET))
    assert saved.status_code == 302
    config.refresh_from_db()
    assert decrypt_secret(config.api_key_encrypted) == NEW_SECRET and config.key_hint == NEW_SECRET[-4:]
    assert config.name == "Claude team"
    row = AuditLog.objects.get(record_id=config.pk, operation_type="update")
    assert row.changes == {"name": "Claude team", "api_key": "[redacted]", "key_hint": NEW_SECRET[-4:]}
    page = operator_browser.get(url).content.decode()
    audit = json.dumps(list(AuditLog.objects.values("changes")))
    for secret in (SECRET, NEW_SECRET, config.api_key_encrypted):
        assert secret not in page and secret not in audit and secret not in caplog.text


def test_saving_without_a_new_key_keeps_the_stored_one(operator_browser, config):
    url = f"/admin/providers/apiproviderconfig/{config.pk}/change/"
    assert (
        operator_browser.post(url, change_form(config, default_model="claude-haiku-4-5")).status_code == 302
    )
    config.refresh_from_db()
    assert decrypt_secret(config.api_key_encrypted) == SECRET and config.default_model == "claude-haiku-4-5"


def test_added_and_deleted_configs_are_audited(operator_browser, organization):
    added = operator_browser.post(
        "/admin/providers/apiproviderconfig/add/",
        change_form(
            APIProviderConfig(organization=organization, provider="openai", name="Added"), new_api_key=SECRET
        ),
    )
    assert added.status_code == 302
    config = APIProviderConfig.objects.get(name="Added")
    assert decrypt_secret(config.api_key_encrypted) == SECRET and config.created_by.is_superuser
    assert AuditLog.objects.filter(record_id=config.pk, operation_type="create").exists()

    deleted = operator_browser.post(
        f"/admin/providers/apiproviderconfig/{config.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302 and not APIProviderConfig.objects.exists()
    assert AuditLog.objects.filter(record_id=config.pk, operation_type="delete").exists()


def test_budget_counters_are_read_only(operator_browser, config):
    counter = BudgetCounter.objects.create(
        organization=config.organization, subject=config.pk, month=current_month()
    )
    assert operator_browser.get("/admin/providers/budgetcounter/").status_code == 200
    page = operator_browser.get(f"/admin/providers/budgetcounter/{counter.pk}/change/").content.decode()
    assert 'name="spent_usd"' not in page and "Save" not in page
    assert operator_browser.get("/admin/providers/budgetcounter/add/").status_code == 403
    assert (
        operator_browser.post(
            f"/admin/providers/budgetcounter/{counter.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert BudgetCounter.objects.filter(pk=counter.pk).exists()


def test_budget_counters_name_their_subject_with_a_link(operator_browser, config):
    from tests.agents.factories import make_agent

    agent = make_agent(config.organization, name="Refund Helper")
    for subject in (config.pk, agent.pk, "agent-deleted-since"):
        BudgetCounter.objects.create(organization=config.organization, subject=subject, month=current_month())
    html = operator_browser.get("/admin/providers/budgetcounter/").content.decode()
    assert f'<a href="/admin/providers/apiproviderconfig/{config.pk}/change/">Claude</a>' in html
    assert f'<a href="/admin/agents/agent/{agent.pk}/change/">Refund Helper</a>' in html
    assert "agent-deleted-since" in html
