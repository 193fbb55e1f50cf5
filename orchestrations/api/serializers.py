from rest_framework import serializers

from agents.api.serializers import TokensSerializer
from orchestrations.models import Orchestration
from studio.api.rendering import RenderedFields

AGENT_IDS_HELP = "Agent ids in order; each position's role comes from the pattern (see /api/patterns)."


class OrchestrationReadSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)
    agent_ids = serializers.ListField(child=serializers.CharField(), read_only=True, help_text=AGENT_IDS_HELP)
    config = serializers.JSONField(
        read_only=True, help_text="The pattern config with its defaults filled in."
    )

    class Meta:
        model = Orchestration
        fields = [
            "id",
            "organization_id",
            "name",
            "description",
            "pattern",
            "agent_ids",
            "config_yaml",
            "config",
            "status",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


def _config_yaml(**kwargs):
    return serializers.CharField(
        trim_whitespace=False, allow_blank=True, help_text="The pattern config (YAML mapping).", **kwargs
    )


class OrchestrationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    pattern = serializers.ChoiceField(choices=Orchestration.Pattern.choices)
    agent_ids = serializers.ListField(
        child=serializers.CharField(max_length=40), max_length=20, help_text=AGENT_IDS_HELP
    )
    config_yaml = _config_yaml(required=False, default="")
    status = serializers.ChoiceField(choices=Orchestration.Status.choices, default=Orchestration.Status.DRAFT)


class OrchestrationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    pattern = serializers.ChoiceField(choices=Orchestration.Pattern.choices, required=False)
    agent_ids = serializers.ListField(
        child=serializers.CharField(max_length=40), max_length=20, required=False, help_text=AGENT_IDS_HELP
    )
    config_yaml = _config_yaml(required=False)
    status = serializers.ChoiceField(choices=Orchestration.Status.choices, required=False)


class ExecutionResultSerializer(serializers.Serializer):
    output = serializers.JSONField()
    run_id = serializers.CharField()
    trace_id = serializers.CharField()
    agents_executed = serializers.ListField(child=serializers.CharField())
    total_cost = serializers.FloatField(help_text="USD")
    tokens = TokensSerializer()
    execution_time_ms = serializers.IntegerField()


class PatternSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    min_agents = serializers.IntegerField()
    max_agents = serializers.IntegerField()
    roles = serializers.ListField(
        child=serializers.CharField(), help_text='"..." repeats the role before it.'
    )
