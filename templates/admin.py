from django import forms
from django.contrib import admin
from django.db.models import Q

from agents.runtime.validation import ConfigError
from studio.admin import AuditedAdmin
from templates import services
from templates.models import AgentTemplate, OrchestrationTemplate

_MONOSPACE = forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"})
_OWNER_FIELDS = ["is_official", "organization", "slug"]


class _TemplateAdminForm(forms.ModelForm):
    """An official template belongs to no organization and has a slug (the loader's key); an
    organization's template is not official."""

    config_yaml = forms.CharField(strip=False, required=False, widget=_MONOSPACE)

    def clean(self):
        cleaned = super().clean()
        official, organization = cleaned.get("is_official"), cleaned.get("organization")
        if official and organization is not None:
            self.add_error("organization", "An official template belongs to no organization; clear it.")
        if not official and organization is None:
            self.add_error("organization", "Choose the organization of a template that is not official.")
        if official and not cleaned.get("slug"):
            self.add_error("slug", "An official template needs a slug (its key in templates/official/).")
        cleaned["config_yaml"] = (cleaned.get("config_yaml") or "").replace(
            "\r\n", "\n"
        )  # browsers post CRLF
        return cleaned


class AgentTemplateAdminForm(_TemplateAdminForm):
    """Validates the config YAML like `use` will, and shows each error with its path."""

    class Meta:
        model = AgentTemplate
        fields = [
            *_OWNER_FIELDS,
            "name",
            "description",
            "category",
            "agent_type",
            "icon",
            "config_yaml",
            "mock_responses",
        ]

    def clean(self):
        cleaned = super().clean()
        cleaned["mock_responses"] = cleaned.get("mock_responses") or []
        try:
            self.instance.config = services.agent_template_config_parse(
                cleaned["config_yaml"],
                official=bool(cleaned.get("is_official")),
                mock_responses=cleaned["mock_responses"],
            )
        except ConfigError as error:
            self.add_error("config_yaml", error.lines())
        return cleaned


class OrchestrationTemplateAdminForm(_TemplateAdminForm):
    """Validates the pattern config against the number of positions, and that every position names
    an agent template the template's users can see."""

    class Meta:
        model = OrchestrationTemplate
        fields = [
            *_OWNER_FIELDS,
            "name",
            "description",
            "pattern",
            "icon",
            "agent_template_ids",
            "config_yaml",
        ]
        help_texts = {
            "agent_template_ids": 'A JSON list of agent template ids, one per position: ["tmpl-…", …]'
        }

    def clean(self):
        cleaned = super().clean()
        ids = cleaned.get("agent_template_ids")
        if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
            self.add_error("agent_template_ids", "Must be a JSON list of agent template ids.")
            return cleaned
        self._check_positions(ids, cleaned)
        if cleaned.get("pattern"):
            try:
                self.instance.config = services.orchestration_template_config_parse(
                    pattern=cleaned["pattern"], config_yaml=cleaned["config_yaml"], agent_template_ids=ids
                )
            except ConfigError as error:
                self.add_error("config_yaml", error.lines())
        return cleaned

    def _check_positions(self, ids: list[str], cleaned) -> None:
        official, organization = cleaned.get("is_official"), cleaned.get("organization")
        visible = Q(organization__isnull=True)
        if not official and organization is not None:
            visible |= Q(organization=organization)
        known = set(AgentTemplate.objects.filter(visible, pk__in=ids).values_list("pk", flat=True))
        missing = [f"[{index}] {item}" for index, item in enumerate(ids) if item not in known]
        if missing:
            where = "official" if official else "official or of its organization"
            self.add_error("agent_template_ids", f"Not an agent template {where}: {', '.join(missing)}")


class _TemplateAdmin(AuditedAdmin, admin.ModelAdmin):
    """Operators curate templates; saves are validated and audited like every other change."""

    list_select_related = ["organization"]
    search_fields = ["id", "slug", "name", "description", "organization__name"]
    readonly_fields = ["id", "downloads", "config", "created_by", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        services.template_save(user=request.user, template=obj, changed=form.changed_data, created=not change)


@admin.register(AgentTemplate)
class AgentTemplateAdmin(_TemplateAdmin):
    form = AgentTemplateAdminForm
    list_display = [
        "name",
        "category",
        "agent_type",
        "is_official",
        "organization",
        "downloads",
        "updated_at",
    ]
    list_filter = ["is_official", "category", "agent_type"]
    fieldsets = [
        (None, {"fields": ["id", *_OWNER_FIELDS, "name", "description", "category", "agent_type", "icon"]}),
        ("Config", {"fields": ["config_yaml", "mock_responses", "config"]}),
        ("History", {"fields": ["downloads", "created_by", "created_at", "updated_at"]}),
    ]


@admin.register(OrchestrationTemplate)
class OrchestrationTemplateAdmin(_TemplateAdmin):
    form = OrchestrationTemplateAdminForm
    list_display = ["name", "pattern", "is_official", "organization", "downloads", "updated_at"]
    list_filter = ["is_official", "pattern"]
    fieldsets = [
        (None, {"fields": ["id", *_OWNER_FIELDS, "name", "description", "pattern", "icon"]}),
        ("Agents and config", {"fields": ["agent_template_ids", "config_yaml", "config"]}),
        ("History", {"fields": ["downloads", "created_by", "created_at", "updated_at"]}),
    ]
