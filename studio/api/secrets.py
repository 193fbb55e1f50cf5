"""Secrets in the API, the one way every resource shows them: a secret the client sends is
write-only, a stored one comes back as a hint of its last characters at most, and one the server
makes (a signing secret, an API key) is in the response that creates it and never again."""

from __future__ import annotations

from rest_framework import serializers


class SecretField(serializers.CharField):
    """A secret the client sends (an API key, an auth header's value): never in a response."""

    def __init__(self, **kwargs):
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(write_only=True, **kwargs)


class SecretHintField(serializers.CharField):
    """What responses show of a stored secret: the hint its service computed
    (`providers.crypto.key_hint`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The last 4 characters of the value (empty when it is short).")
        super().__init__(read_only=True, **kwargs)


class NewSecretField(serializers.CharField):
    """A secret the server made, in the one response that creates it: `context["secret"]` (only its
    hash or ciphertext is kept)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value) -> str:
        return self.context["secret"]
