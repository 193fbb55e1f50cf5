from rest_framework import serializers

from agents.models import Agent, AgentVersion
from studio.api.rendering import RenderedFields


class AgentReadSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    config = serializers.JSONField(
        read_only=True, help_text="The validated config with its defaults filled in."
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "organization_id",
            "name",
            "description",
            "agent_type",
            "status",
            "is_public",
            "version",
            "config_yaml",
            "config",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentVersionSerializer(RenderedFields, serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    config = serializers.JSONField(read_only=True)

    class Meta:
        model = AgentVersion
        fields = ["id", "version", "change_summary", "config_yaml", "config", "created_by", "created_at"]
        read_only_fields = fields


def _config_yaml_field(**kwargs) -> serializers.CharField:
    # No length limit here: the loader reports an oversized document like every other config error.
    return serializers.CharField(
        trim_whitespace=False, allow_blank=True, help_text="The agent config, YAML version 1.", **kwargs
    )


class AgentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    config_yaml = _config_yaml_field()
    agent_type = serializers.ChoiceField(choices=Agent.AgentType.choices, default=Agent.AgentType.CUSTOM)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    status = serializers.ChoiceField(choices=Agent.Status.choices, default=Agent.Status.DRAFT)
    is_public = serializers.BooleanField(default=False)


class AgentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    config_yaml = _config_yaml_field(required=False)
    agent_type = serializers.ChoiceField(choices=Agent.AgentType.choices, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Agent.Status.choices, required=False)
    is_public = serializers.BooleanField(required=False)
    change_summary = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Kept with the replaced config when config_yaml changes; generated when empty.",
    )


class AgentValidateSerializer(serializers.Serializer):
    config_yaml = _config_yaml_field()


class ConfigErrorSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="Where the error is, e.g. `signature.outputs[1].enum_values`; empty for the document."
    )
    message = serializers.CharField()


class AgentValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ConfigErrorSerializer(many=True)
    config = serializers.JSONField(allow_null=True, help_text="The normalized config when valid, else null.")


class ExecuteSerializer(serializers.Serializer):
    input = serializers.JSONField(help_text="The run's input object.")

    def validate_input(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class TokensSerializer(serializers.Serializer):
    input = serializers.IntegerField()
    output = serializers.IntegerField()
    total = serializers.IntegerField()


class AgentTestResultSerializer(serializers.Serializer):
    output = serializers.JSONField()
    tokens = TokensSerializer()
    cost = serializers.FloatField(help_text="USD")
    run_id = serializers.CharField()
    trace_id = serializers.CharField()
    execution_time_ms = serializers.IntegerField()
