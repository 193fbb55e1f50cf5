"""Templates to start agents and orchestrations from: official ones (shipped with the code, visible to
every organization) and the ones an organization saves for itself."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent
from orchestrations.models import Orchestration
from studio.ids import PrefixedIdField

# An official template belongs to no organization; an organization's own template is never official.
_OFFICIAL_XOR_ORGANIZATION = Q(is_official=True, organization__isnull=True) | Q(
    is_official=False, organization__isnull=False
)


class TemplateQuerySet(models.QuerySet):
    def visible_to(self, user) -> TemplateQuerySet:
        """The official templates and those of the user's organization."""
        return self.filter(Q(organization__isnull=True) | Q(organization_id=user.organization_id))


class Template(models.Model):
    """What agent and orchestration templates share: identity, owner (none = official), gallery
    text, and the download count."""

    id = PrefixedIdField("tmpl")
    slug = models.SlugField(max_length=80, blank=True)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    is_official = models.BooleanField(default=False)
    downloads = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-is_official", "name", "id"]

    def __str__(self) -> str:
        return self.name


class AgentTemplate(Template):
    """An agent to start from: a version-1 agent config YAML plus what the gallery shows.

    `slug` is the stable key of an official template (the loader updates it in place); `config` is
    the validated, normalized form of `config_yaml`, whose MCP tools may name their server by a
    slot (templates.slots) that `use` fills."""

    class Category(models.TextChoices):
        SUPPORT = "support"
        ANALYSIS = "analysis"
        CONTENT = "content"
        ENGINEERING = "engineering"
        DATA_EXTRACTION = "data_extraction"
        TRANSLATION = "translation"
        CLASSIFICATION = "classification"
        SUMMARIZATION = "summarization"
        RESEARCH = "research"
        SALES = "sales"
        MARKETING = "marketing"
        LEGAL = "legal"
        FINANCE = "finance"
        HR = "hr", "HR"
        OPERATIONS = "operations"
        OTHER = "other"

    category = models.CharField(max_length=30, choices=Category.choices, default=Category.OTHER)
    agent_type = models.CharField(
        max_length=20, choices=Agent.AgentType.choices, default=Agent.AgentType.CUSTOM
    )
    icon = models.CharField(
        max_length=40, blank=True, help_text="An icon name the UI knows, e.g. `lifebuoy`."
    )
    config_yaml = models.TextField()
    config = models.JSONField(default=dict)
    mock_responses = models.JSONField(
        default=list,
        blank=True,
        help_text="The mock provider's script (provider.responses) when `use` falls back to mock, "
        "so the agent shows its tool calls offline.",
    )

    class Meta(Template.Meta):
        constraints = [
            models.CheckConstraint(
                condition=_OFFICIAL_XOR_ORGANIZATION, name="agent_template_official_xor_org"
            ),
            models.UniqueConstraint(
                fields=["slug"], condition=Q(is_official=True), name="agent_template_official_slug_unique"
            ),
        ]
        indexes = [models.Index(fields=["organization", "category"])]


class OrchestrationTemplate(Template):
    """An orchestration to start from: a pattern, its config YAML and, per position, the agent
    template that fills that position's role (`agent_template_ids`, ordered like an orchestration's
    `agent_ids`; a template may fill several positions)."""

    pattern = models.CharField(max_length=30, choices=Orchestration.Pattern.choices)
    config_yaml = models.TextField(blank=True)
    config = models.JSONField(default=dict)
    agent_template_ids = models.JSONField(default=list)
    icon = models.CharField(max_length=40, blank=True, help_text="An icon name the UI knows.")

    class Meta(Template.Meta):
        constraints = [
            models.CheckConstraint(
                condition=_OFFICIAL_XOR_ORGANIZATION, name="orchestration_template_official_xor_org"
            ),
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(is_official=True),
                name="orchestration_template_official_slug_unique",
            ),
        ]
        indexes = [models.Index(fields=["organization", "pattern"])]
