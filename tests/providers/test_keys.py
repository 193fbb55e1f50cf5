"""Fernet key rotation: old ciphertexts decrypt while their key is listed, and
`manage.py rotate_secrets` moves every stored key to the newest one."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command

from observability.models import AuditLog
from providers.crypto import decrypt_secret
from providers.models import APIProviderConfig
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def rotate(**options) -> str:
    out = StringIO()
    call_command("rotate_secrets", stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def stored_under_old_key(settings, organization):
    settings.FERNET_KEYS = [OLD_KEY]
    configs = [make_provider_config(organization, api_key=f"kz-secret-{n}-abcdef") for n in range(5)]
    make_provider_config(organization, provider="mock", api_key="")  # no key: nothing to rotate
    settings.FERNET_KEYS = [NEW_KEY, OLD_KEY]
    return configs


def test_old_ciphertexts_decrypt_while_the_old_key_is_listed(stored_under_old_key, settings):
    config = stored_under_old_key[0]
    assert decrypt_secret(config.api_key_encrypted) == "kz-secret-0-abcdef"
    settings.FERNET_KEYS = [NEW_KEY]
    with pytest.raises(InvalidToken):
        decrypt_secret(config.api_key_encrypted)


def test_the_command_reencrypts_every_key_with_the_newest(stored_under_old_key, settings):
    assert "Rotated 5 provider key(s)." in rotate(batch_size=2)

    settings.FERNET_KEYS = [NEW_KEY]  # the old key is gone
    rotated = APIProviderConfig.objects.exclude(api_key_encrypted="").order_by("name", "pk")
    assert sorted(decrypt_secret(c.api_key_encrypted) for c in rotated) == [
        f"kz-secret-{n}-abcdef" for n in range(5)
    ]
    audit = AuditLog.objects.get(operation_type="rotate_keys", model_name="APIProviderConfig")
    assert audit.changes == {"rotated": 5}


def test_rotating_again_changes_nothing_that_matters(stored_under_old_key, settings):
    rotate()
    settings.FERNET_KEYS = [NEW_KEY]
    assert "Rotated 5 provider key(s)." in rotate()
    assert {
        decrypt_secret(c.api_key_encrypted) for c in APIProviderConfig.objects.exclude(api_key_encrypted="")
    } == {f"kz-secret-{n}-abcdef" for n in range(5)}
