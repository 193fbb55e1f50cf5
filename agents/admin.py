import json

from django import forms
from django.contrib import admin

from agents import services
from agents.mcp_tools import mcp_url_problem
from agents.models import Agent, AgentVersion, McpServer
from agents.runtime.validation import ConfigError
from providers.llm.urlsafety import url_origin
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
                raise forms.ValidationError(error.lines()) from None
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


class McpServerAdminForm(forms.ModelForm):
    """The stored headers are never shown; new ones (a JSON object) replace them all."""

    new_headers = forms.CharField(
        label="New auth headers",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='A JSON object such as {"Authorization": "Bearer ..."}; leave empty to keep the '
        "current headers. Stored encrypted and never shown again.",
    )

    class Meta:
        model = McpServer
        fields = ["name", "url", "allowed_tools"]  # never headers_encrypted

    def clean_url(self):
        url = self.cleaned_data["url"]
        problem = mcp_url_problem(url) if url != self.instance.url else None
        if problem is not None:
            raise forms.ValidationError(problem)
        return url

    def clean(self):
        cleaned = super().clean()
        url, moved = cleaned.get("url"), False
        if url and self.instance.headers_encrypted:
            moved = url_origin(url) != self.instance.headers_origin
        if moved and not cleaned.get("new_headers"):
            message = "A URL on another scheme, host or port needs the headers again (sent only where given)."
            self.add_error("new_headers", message)
        return cleaned

    def clean_allowed_tools(self):
        tools = self.cleaned_data["allowed_tools"]
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
            raise forms.ValidationError("A JSON list of tool names, or null for every tool.")
        return tools

    def clean_new_headers(self):
        text = self.cleaned_data["new_headers"]
        if not text:
            return None
        try:
            headers = json.loads(text)
        except ValueError:
            raise forms.ValidationError("Not JSON.") from None
        if not isinstance(headers, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in headers.items()
        ):
            raise forms.ValidationError('A JSON object of header names and values: {"name": "value"}.')
        return headers


@admin.register(McpServer)
class McpServerAdmin(AuditedAdmin, admin.ModelAdmin):
    """Operators inspect and correct MCP servers; a change goes through `mcp_server_update` (URL
    rules, encrypted headers, audit row without the values). Servers are added and removed through
    the API, where an organization and the in-use rule apply."""

    form = McpServerAdminForm
    list_display = ["name", "organization", "url", "updated_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["id", "name", "url", "organization__name"]
    readonly_fields = ["id", "organization", "headers_hint", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "organization", "name", "url", "allowed_tools"]}),
        ("Auth headers", {"fields": ["headers_hint", "new_headers"]}),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.MCP_SERVER_FIELDS
        }
        headers = form.cleaned_data.get("new_headers")
        services.mcp_server_update(
            actor=request.user, server=McpServer.objects.get(pk=obj.pk), headers=headers, **fields
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
