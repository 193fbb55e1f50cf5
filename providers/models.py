"""Stored provider credentials and the monthly spend counters budgets are enforced on."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from providers.crypto import decrypt_secret
from providers.llm.types import PROVIDER_KINDS
from providers.llm.urlsafety import url_origin
from studio.ids import PrefixedIdField


class APIProviderConfig(models.Model):
    """An account at an LLM provider. The key is stored encrypted (MultiFernet) and never shown:
    only `key_hint`, its last four characters. `user` set = a personal config of that user.
    `key_origin` is where the key was given for: it is sent to that origin only."""

    Kind = models.TextChoices("Kind", [(kind, kind) for kind in PROVIDER_KINDS])

    id = PrefixedIdField("prov")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    provider = models.CharField(max_length=30, choices=Kind.choices)
    name = models.CharField(max_length=120)
    api_key_encrypted = models.TextField(blank=True)
    key_hint = models.CharField(max_length=8, blank=True)
    api_base_url = models.CharField(max_length=500, blank=True)
    key_origin = models.CharField(
        max_length=520, blank=True, help_text="scheme://host:port of the base URL the key was given with."
    )
    api_version = models.CharField(max_length=40, blank=True)
    default_model = models.CharField(max_length=120, blank=True)
    pricing_overrides = models.JSONField(default=dict, blank=True)
    budget_limit_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider"],
                condition=models.Q(is_default=True),
                name="one_default_provider_per_kind",
            ),
        ]
        indexes = [models.Index(fields=["organization", "provider", "is_active"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    def pin_key_origin(self) -> None:
        """Record the base URL's origin as where the key goes (when the key is given with it)."""
        self.key_origin = url_origin(self.api_base_url)

    def api_key_for_its_origin(self) -> str:
        """The decrypted key, or "" once the base URL points at another origin than the key was
        given for (changed around the API: in the database, the admin): it is not sent there."""
        if url_origin(self.api_base_url) != self.key_origin:
            return ""
        return decrypt_secret(self.api_key_encrypted)


class BudgetCounter(models.Model):
    """Spend of one subject (a provider config or an agent id) in one calendar month (UTC).

    `reserved_usd` holds the maximum cost of calls in flight; a new month starts a new row, so
    spend resets without a scheduled job."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=40)
    month = models.DateField()
    spent_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    reserved_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "month"], name="budget_counter_per_month")]

    def __str__(self) -> str:
        return f"{self.subject} {self.month:%Y-%m}"
