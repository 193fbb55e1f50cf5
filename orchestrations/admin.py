from django import forms
from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from agents.models import Agent
from agents.runtime.validation import ConfigError
from orchestrations.models import Approval, Orchestration
from orchestrations.services import orchestration_config_parse
from studio.admin import AuditedAdmin
from studio.admin_links import record_link


class OrchestrationAdminForm(forms.ModelForm):
    class Meta:
        model = Orchestration
        fields = ["organization", "name", "description", "pattern", "agent_ids", "config_yaml", "status"]

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        if organization is not None and cleaned.get("pattern"):
            try:
                cleaned["config"] = orchestration_config_parse(
                    organization_id=organization.pk,
                    pattern=cleaned["pattern"],
                    config_yaml=cleaned.get("config_yaml") or "",
                    agent_ids=cleaned.get("agent_ids") or [],
                )
            except ConfigError as error:
                raise forms.ValidationError([f"{e['path']}: {e['message']}" for e in error.errors]) from None
        return cleaned

    def save(self, commit=True):
        self.instance.config = self.cleaned_data["config"]
        return super().save(commit)


@admin.register(Orchestration)
class OrchestrationAdmin(AuditedAdmin, admin.ModelAdmin):
    form = OrchestrationAdminForm
    list_display = ["name", "organization", "pattern", "status", "created_at"]
    list_filter = ["pattern", "status"]
    search_fields = ["name", "description", "organization__name"]
    list_select_related = ["organization"]
    readonly_fields = ["id", "agents", "created_at", "updated_at"]

    @admin.display(description="agents (links)")
    def agents(self, orchestration):
        names = Agent.objects.in_bulk(orchestration.agent_ids)
        links = [
            record_link(agent_id, f"{names[agent_id]} ({agent_id})" if agent_id in names else None)
            for agent_id in orchestration.agent_ids
        ]
        return format_html_join(mark_safe("<br>"), "{}", ((link,) for link in links)) or "-"


@admin.register(Approval)
class ApprovalAdmin(AuditedAdmin, admin.ModelAdmin):
    """Approvals runs wait for, read-only: people decide through POST /api/approvals/{id}, which
    resumes the run (a change here would not)."""

    list_display = ["id", "kind", "status", "organization", "run_id", "created_at", "decided_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["organization"]
    search_fields = ["id", "run__id", "organization__name"]
    fields = [
        "id",
        "organization",
        "run_link",
        "kind",
        "status",
        "key",
        "subject",
        "on_timeout",
        "expires_at",
        "decided_by",
        "comment",
        "created_at",
        "decided_at",
    ]
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, approval):
        return record_link(approval.run_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
