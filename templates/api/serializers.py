from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.api.serializers import AgentReadSerializer
from orchestrations.api.serializers import OrchestrationReadSerializer
from orchestrations.patterns import PATTERNS
from templates.models import AgentTemplate, OrchestrationTemplate

_TEMPLATE_FIELDS = [
    "id",
    "organization_id",
    "is_official",
    "slug",
    "name",
    "description",
    "icon",
    "downloads",
]
_TRAILING_FIELDS = ["config_yaml", "config", "created_by", "created_at", "updated_at"]


class AgentTemplateReadSerializer(serializers.ModelSerializer):
    organization_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="null for an official template."
    )
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    config = serializers.JSONField(
        read_only=True, help_text="The validated config with its defaults filled in."
    )

    class Meta:
        model = AgentTemplate
        fields = [*_TEMPLATE_FIELDS, "category", "agent_type", *_TRAILING_FIELDS]
        read_only_fields = fields


class RoleSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="0-based position in the orchestration's agent_ids.")
    role = serializers.CharField()
    agent_template_id = serializers.CharField()
    name = serializers.CharField(allow_null=True, help_text="The agent template's name; null if it is gone.")


class OrchestrationTemplateReadSerializer(serializers.ModelSerializer):
    """Expects `context["agent_template_names"]`: `{id: name}` of the referenced agent templates."""

    organization_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="null for an official template."
    )
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    config = serializers.JSONField(
        read_only=True, help_text="The pattern config with its defaults filled in."
    )
    agent_template_ids = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The agent template of each position, in order.",
    )
    roles = serializers.SerializerMethodField()

    class Meta:
        model = OrchestrationTemplate
        fields = [*_TEMPLATE_FIELDS, "pattern", "agent_template_ids", "roles", *_TRAILING_FIELDS]
        read_only_fields = fields

    @extend_schema_field(RoleSerializer(many=True))
    def get_roles(self, template):
        names = self.context.get("agent_template_names", {})
        ids = template.agent_template_ids
        roles = PATTERNS[template.pattern].roles_for(len(ids))
        return [
            {
                "position": position,
                "role": role,
                "agent_template_id": template_id,
                "name": names.get(template_id),
            }
            for position, (role, template_id) in enumerate(zip(roles, ids, strict=True))
        ]


class AgentTemplateCreateSerializer(serializers.Serializer):
    agent_id = serializers.CharField(max_length=40, help_text="An agent of your organization to save.")
    name = serializers.CharField(max_length=120)
    category = serializers.ChoiceField(choices=AgentTemplate.Category.choices)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, help_text="Defaults to the agent's description."
    )
    icon = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")


class TemplateUseSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, help_text="The name of what the template creates.")


class ProviderChoiceSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="The provider kind the agent uses.")
    model = serializers.CharField()
    provider_id = serializers.CharField(
        allow_null=True, help_text="The organization's provider config the agent is pinned to; null for mock."
    )
    fallback = serializers.BooleanField(
        help_text="true when the organization has no config of the template's kind and the agent uses mock."
    )


class AgentTemplateUseSerializer(serializers.Serializer):
    agent = AgentReadSerializer()
    provider = ProviderChoiceSerializer()


class TemplateAgentSerializer(serializers.Serializer):
    role = serializers.CharField()
    agent_template_id = serializers.CharField(source="template_id")
    agent = AgentReadSerializer()
    provider = ProviderChoiceSerializer()


class OrchestrationTemplateUseSerializer(serializers.Serializer):
    orchestration = OrchestrationReadSerializer()
    agents = TemplateAgentSerializer(many=True, help_text="The agents created, in the orchestration's order.")
