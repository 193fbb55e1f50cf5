from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.models import CHANNELS, NAME_PATTERN, Deployment, DeploymentKey
from deployments.pinning import pinned_of
from deployments.selectors import deployment_api_url, deployment_commands, deployment_mcp_url
from deployments.services import DEFAULT_RATE_LIMIT_PER_MINUTE
from studio.api.rendering import RenderedFields
from studio.api.secrets import NewSecretField

NAME_HELP = "URL slug, unique across the instance: lowercase letters, digits and hyphens (1-63)."


@extend_schema_field(
    {
        "oneOf": [
            {
                "type": "array",
                "items": {"type": "string", "enum": list(CHANNELS)},
                "minItems": 1,
                "maxItems": len(CHANNELS),
            },
            {
                "type": "object",
                "properties": {channel: {"type": "boolean"} for channel in CHANNELS},
                "additionalProperties": False,
                "description": "Flags: the channels set to true are opened (at least one).",
            },
        ],
        "description": 'The channels to open: a list (`["api", "mcp"]`) or flags '
        '(`{"api": true, "mcp": false}`). Default: all.',
    }
)
class ChannelsField(serializers.ListField):
    """The channels to open: a list (`["api", "mcp"]`) or flags (`{"api": true, "mcp": false}`)."""

    def __init__(self, **kwargs):
        super().__init__(
            child=serializers.ChoiceField(choices=CHANNELS), min_length=1, max_length=len(CHANNELS), **kwargs
        )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(CHANNELS))
            if unknown:
                raise serializers.ValidationError(f"Unknown channels: {', '.join(unknown)}.")
            if not all(isinstance(enabled, bool) for enabled in data.values()):
                raise serializers.ValidationError("Each channel flag must be true or false.")
            data = [channel for channel, enabled in data.items() if enabled is True]
        return list(dict.fromkeys(super().to_internal_value(data)))


class DeploySerializer(serializers.Serializer):
    agent_id = serializers.CharField(max_length=40, required=False, allow_null=True, default=None)
    orchestration_id = serializers.CharField(max_length=40, required=False, allow_null=True, default=None)
    name = serializers.RegexField(
        NAME_PATTERN, max_length=63, required=False, allow_null=True, default=None, help_text=NAME_HELP
    )
    channels = ChannelsField(default=list(CHANNELS))
    rate_limit_per_minute = serializers.IntegerField(
        min_value=1, max_value=100_000, default=DEFAULT_RATE_LIMIT_PER_MINUTE
    )

    def validate(self, attrs):
        if bool(attrs.get("agent_id")) == bool(attrs.get("orchestration_id")):
            raise serializers.ValidationError("Give exactly one of agent_id and orchestration_id.")
        return attrs


class DeployResultSerializer(serializers.Serializer):
    """The new deployment and how to reach it: only the channels it serves appear."""

    deployment_id = serializers.CharField()
    name = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField())
    api_url = serializers.CharField(required=False, help_text="With the api channel.")
    mcp_url = serializers.CharField(required=False, help_text="With the mcp channel.")
    mcp_command = serializers.CharField(
        required=False, help_text="With the mcp channel: registers the MCP server with Claude Code."
    )
    cli_command = serializers.CharField(required=False, help_text="With the cli channel.")
    api_key = serializers.CharField(help_text="Shown this once; only its hash is stored.")


class DeploymentKeySerializer(RenderedFields, serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = DeploymentKey
        fields = ["id", "prefix", "is_active", "created_by", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class NewKeySerializer(DeploymentKeySerializer):
    api_key = NewSecretField(help_text="Shown this once; only its hash is stored.")

    class Meta(DeploymentKeySerializer.Meta):
        fields = [*DeploymentKeySerializer.Meta.fields, "api_key"]
        read_only_fields = fields


class DeploymentReadSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    agent_id = serializers.CharField(read_only=True, allow_null=True)
    orchestration_id = serializers.CharField(read_only=True, allow_null=True)
    kind = serializers.CharField(source="target_kind", read_only=True)
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    channels = serializers.ListField(child=serializers.CharField(), read_only=True)
    # Described, not an enum component: a named enum would collide with the API's other `status` enums.
    status = serializers.CharField(read_only=True, help_text="running or stopped.")
    api_url = serializers.SerializerMethodField(help_text="null when the api channel is off.")
    mcp_url = serializers.SerializerMethodField(help_text="null when the mcp channel is off.")

    class Meta:
        model = Deployment
        fields = [
            "id",
            "organization_id",
            "name",
            "kind",
            "agent_id",
            "orchestration_id",
            "channels",
            "status",
            "rate_limit_per_minute",
            "pinned_version",
            "pinned_at",
            "api_url",
            "mcp_url",
            "created_by",
            "created_at",
            "started_at",
            "stopped_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_api_url(self, deployment):
        return deployment_api_url(deployment)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_mcp_url(self, deployment):
        return deployment_mcp_url(deployment)


class DeploymentUsageSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=False)
    last_run_at = serializers.DateTimeField(allow_null=True)


class DeploymentDetailSerializer(DeploymentReadSerializer):
    """A deployment with what it serves, its keys, usage so far and the commands that reach it
    (with a placeholder for the key)."""

    title = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()
    input_schema = serializers.SerializerMethodField()
    output_schema = serializers.SerializerMethodField()
    mcp_command = serializers.SerializerMethodField(help_text="null when the mcp channel is off.")
    cli_command = serializers.SerializerMethodField(help_text="null when the cli channel is off.")
    keys = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()

    class Meta(DeploymentReadSerializer.Meta):
        fields = [
            *DeploymentReadSerializer.Meta.fields,
            "title",
            "description",
            "input_schema",
            "output_schema",
            "mcp_command",
            "cli_command",
            "keys",
            "usage",
        ]
        read_only_fields = fields

    def get_title(self, deployment) -> str:
        return pinned_of(deployment).title

    def get_description(self, deployment) -> str:
        return pinned_of(deployment).description

    def get_input_schema(self, deployment) -> dict:
        return pinned_of(deployment).input_schema

    def get_output_schema(self, deployment) -> dict:
        return pinned_of(deployment).output_schema

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_mcp_command(self, deployment):
        return deployment_commands(deployment).get("mcp_command")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cli_command(self, deployment):
        return deployment_commands(deployment).get("cli_command")

    @extend_schema_field(DeploymentKeySerializer(many=True))
    def get_keys(self, deployment) -> list:
        return DeploymentKeySerializer(self.context["keys"], many=True).data

    @extend_schema_field(DeploymentUsageSerializer)
    def get_usage(self, deployment) -> dict:
        return DeploymentUsageSerializer(self.context["usage"]).data
