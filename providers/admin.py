from django import forms
from django.contrib import admin

from observability.recorder import jsonable
from providers.crypto import encrypt_secret, key_hint
from providers.llm.types import UnsafeProviderUrl
from providers.llm.urlsafety import check_no_credentials
from providers.models import APIProviderConfig, BudgetCounter
from studio.admin_links import name_of, record_link
from studio.audit import audit_record


class APIProviderConfigForm(forms.ModelForm):
    """The stored key is never shown; a new one can be typed in to replace it."""

    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current key. Stored encrypted and never shown again.",
    )

    class Meta:
        model = APIProviderConfig
        fields = [  # never api_key_encrypted
            "organization",
            "user",
            "provider",
            "name",
            "is_default",
            "is_active",
            "api_base_url",
            "api_version",
            "default_model",
            "budget_limit_usd",
            "pricing_overrides",
        ]

    def clean_api_base_url(self) -> str:
        """Refused as through the API: a user name, password or query string would show in
        reads, audit rows and exported code."""
        url = self.cleaned_data["api_base_url"]
        try:
            check_no_credentials(url)
        except UnsafeProviderUrl as error:
            raise forms.ValidationError(error.message) from None
        return url


@admin.register(APIProviderConfig)
class APIProviderConfigAdmin(admin.ModelAdmin):
    form = APIProviderConfigForm
    list_display = [
        "name",
        "provider",
        "organization",
        "user",
        "key_hint",
        "is_default",
        "is_active",
        "created_at",
    ]
    list_filter = ["provider", "is_active", "is_default"]
    list_select_related = ["organization", "user"]
    search_fields = ["name", "default_model", "api_base_url", "organization__name", "user__email"]
    raw_id_fields = ["organization", "user"]
    readonly_fields = ["id", "key_hint", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "organization", "user", "provider", "name", "is_default", "is_active"]}),
        ("Key", {"fields": ["key_hint", "new_api_key"]}),
        ("Connection", {"fields": ["api_base_url", "api_version", "default_model"]}),
        ("Money", {"fields": ["budget_limit_usd", "pricing_overrides"]}),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        """Encrypts a newly typed key and audits the change (with the key's hint, never the key)."""
        changes = {
            name: jsonable(obj.serializable_value(name))
            for name in form.changed_data
            if name != "new_api_key"
        }
        new_key = form.cleaned_data.get("new_api_key")
        if new_key:
            obj.api_key_encrypted, obj.key_hint = encrypt_secret(new_key), key_hint(new_key)
            obj.pin_key_origin()  # a base URL changed here without a new key gets no key sent to it
            changes.update(api_key="changed", key_hint=obj.key_hint)
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            organization_id=obj.organization_id,
            operation="update" if change else "create",
            instance=obj,
            changes=changes,
        )

    def delete_model(self, request, obj):
        _audit_deletion(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _audit_deletion(request, obj)
        super().delete_queryset(request, queryset)


def _audit_deletion(request, config: APIProviderConfig) -> None:
    audit_record(
        actor=request.user,
        organization_id=config.organization_id,
        operation="delete",
        instance=config,
        changes={"name": config.name, "provider": config.provider},
    )


@admin.register(BudgetCounter)
class BudgetCounterAdmin(admin.ModelAdmin):
    """Monthly spend and in-flight reservations, read-only: only the gateway moves them."""

    list_display = ["subject_link", "month", "organization", "spent", "reserved"]
    list_filter = ["month"]
    list_select_related = ["organization"]
    search_fields = ["subject", "organization__name"]
    fields = ["subject_link", "month", "organization", "spent_usd", "reserved_usd"]
    readonly_fields = fields

    def get_queryset(self, request):
        # A subject is a provider config or an agent: its name, for a whole list page in one query.
        subject_name = name_of("subject", "providers.APIProviderConfig", "agents.Agent")
        return super().get_queryset(request).annotate(subject_name=subject_name)

    @admin.display(description="subject", ordering="subject_name")
    def subject_link(self, counter):
        return record_link(counter.subject, counter.subject_name)

    @admin.display(description="spent (USD)", ordering="spent_usd")
    def spent(self, counter):
        return f"{counter.spent_usd:.6f}"

    @admin.display(description="reserved (USD)", ordering="reserved_usd")
    def reserved(self, counter):
        return f"{counter.reserved_usd:.6f}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
