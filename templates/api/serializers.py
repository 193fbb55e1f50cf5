from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.api.serializers import AgentReadSerializer
from orchestrations.api.serializers import OrchestrationReadSerializer
from orchestrations.patterns import PATTERNS
from studio.api.rendering import RenderedFields
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.slots import template_slots

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


class McpSlotSerializer(serializers.Serializer):
    slot = serializers.CharField(help_text="The key to give one of your MCP servers in `use`'s mcp_servers.")
    tools = serializers.ListField(
        child=serializers.CharField(), help_text="The tools of that server the agent calls."
    )


class AgentTemplateReadSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="null for an official template."
    )
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    config = serializers.JSONField(
        read_only=True,
        help_text="The validated config with its defaults filled in; an MCP tool's server may be "
        "a slot, {slot: NAME}.",
    )
    mcp_servers = serializers.SerializerMethodField(
        help_text="The MCP server slots `use` must fill with servers of your organization."
    )
    mock_responses = serializers.JSONField(
        read_only=True, help_text="The mock provider's script when `use` falls back to mock."
    )

    class Meta:
        model = AgentTemplate
        fields = [
            *_TEMPLATE_FIELDS,
            "category",
            "agent_type",
            "mcp_servers",
            *_TRAILING_FIELDS[:2],
            "mock_responses",
            *_TRAILING_FIELDS[2:],
        ]
        read_only_fields = fields

    @extend_schema_field(McpSlotSerializer(many=True))
    def get_mcp_servers(self, template):
        return template_slots([template.config])


class RoleSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="0-based position in the orchestration's agent_ids.")
    role = serializers.CharField()
    agent_template_id = serializers.CharField()
    name = serializers.CharField(allow_null=True, help_text="The agent template's name; null if it is gone.")


class OrchestrationTemplateReadSerializer(RenderedFields, serializers.ModelSerializer):
    """Expects `context["agent_templates"]`: `{id: AgentTemplate}` of the referenced agent templates
    the user may see."""

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
    mcp_servers = serializers.SerializerMethodField(
        help_text="The MCP server slots of its agent templates, which `use` must fill (a slot name "
        "shared by several agents is one server)."
    )

    class Meta:
        model = OrchestrationTemplate
        fields = [
            *_TEMPLATE_FIELDS,
            "pattern",
            "agent_template_ids",
            "roles",
            "mcp_servers",
            *_TRAILING_FIELDS,
        ]
        read_only_fields = fields

    @extend_schema_field(RoleSerializer(many=True))
    def get_roles(self, template):
        found = self.context.get("agent_templates", {})
        ids = template.agent_template_ids
        roles = PATTERNS[template.pattern].roles_for(len(ids))
        return [
            {
                "position": position,
                "role": role,
                "agent_template_id": template_id,
                "name": found[template_id].name if template_id in found else None,
            }
            for position, (role, template_id) in enumerate(zip(roles, ids, strict=True))
        ]

    @extend_schema_field(McpSlotSerializer(many=True))
    def get_mcp_servers(self, template):
        found = self.context.get("agent_templates", {})
        return template_slots(found[i].config for i in template.agent_template_ids if i in found)


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
    mcp_servers = serializers.DictField(
        child=serializers.CharField(max_length=40),
        required=False,
        default=dict,
        help_text="One of your MCP servers (mcps-…) for each slot the template lists in its "
        'mcp_servers, e.g. {"orders": "mcps-…"}; the server must offer (allow) the slot\'s tools.',
    )


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
