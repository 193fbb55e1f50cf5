from django import forms
from django.contrib import admin

from agents import services
from agents.models import Agent, AgentVersion
from agents.runtime.validation import ConfigError
from studio.admin import AuditedAdmin

EDITABLE_FIELDS = ["name", "description", "agent_type", "status", "is_public", "config_yaml"]


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    fields = ["version", "change_summary", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AgentAdminForm(forms.ModelForm):
    """Validates a changed config like the API does and shows each error with its path."""

    actor = None  # the operator saving the form, set per request by AgentAdmin.get_form

    config_yaml = forms.CharField(
        strip=False, widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"})
    )
    change_summary = forms.CharField(
        max_length=500,
        required=False,
        help_text="Kept with the replaced config when the config changes; generated when empty.",
    )

    class Meta:
        model = Agent
        fields = EDITABLE_FIELDS

    def clean_config_yaml(self):
        config_yaml = self.cleaned_data["config_yaml"].replace("\r\n", "\n")  # browsers post CRLF
        if config_yaml != self.instance.config_yaml:
            try:
                services.agent_config_parse(
                    organization_id=self.instance.organization_id,
                    user=self.actor,
                    config_yaml=config_yaml,
                    agent=self.instance,
                )
            except ConfigError as error:
                raise forms.ValidationError(
                    [f"{item['path'] or '(document)'}: {item['message']}" for item in error.errors]
                ) from None
        return config_yaml


@admin.register(Agent)
class AgentAdmin(AuditedAdmin, admin.ModelAdmin):
    """Operators inspect and correct agents; a change goes through `agent_update`, so it is
    validated, versioned and audited like one made through the API. Agents are created and
    deleted through the API, where an organization and the in-use rule apply."""

    form = AgentAdminForm
    list_display = ["name", "organization", "agent_type", "status", "version", "is_public", "updated_at"]
    list_filter = ["organization", "status", "agent_type"]
    list_select_related = ["organization"]
    search_fields = ["id", "name", "description", "organization__name"]
    readonly_fields = ["id", "organization", "version", "config", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {"fields": ["id", "organization", "name", "description", "agent_type", "status", "is_public"]},
        ),
        ("Config", {"fields": ["version", "config_yaml", "change_summary", "config"]}),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]
    inlines = [AgentVersionInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE_FIELDS}
        fresh = Agent.objects.get(pk=obj.pk)
        services.agent_update(
            user=request.user,
            agent=fresh,
            change_summary=form.cleaned_data.get("change_summary") or None,
            **fields,
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
