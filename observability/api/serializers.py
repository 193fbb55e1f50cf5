from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from observability.models import AuditLog, Run, Span
from studio.api.rendering import RenderedFields


class AuditLogSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    user_id = serializers.CharField(read_only=True, allow_null=True)
    user_email = serializers.SerializerMethodField(help_text="The actor's email when they acted.")

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "organization_id",
            "user_id",
            "user_email",
            "model_name",
            "operation_type",
            "record_id",
            "changes",
            "ip_address",
            "user_agent",
            "created_at",
        ]
        read_only_fields = fields

    def get_user_email(self, row) -> str | None:
        return row.actor_email or None


class BlankAsNullField(serializers.CharField):
    """A plain-id reference stored as "" when absent, shown as null."""

    context_free = True  # renders its value alone (studio.api.rendering)

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)  # also documents it as nullable

    def to_representation(self, value):
        return value or None


class TraceTokensSerializer(RenderedFields, serializers.Serializer):
    context_free = True  # get_total reads only the run (studio.api.rendering)

    input = serializers.IntegerField(source="input_tokens")
    output = serializers.IntegerField(source="output_tokens")
    total = serializers.SerializerMethodField()

    def get_total(self, obj) -> int:
        return obj.input_tokens + obj.output_tokens


class SpanSerializer(serializers.ModelSerializer):
    parent_id = serializers.CharField(allow_null=True)
    kind = serializers.CharField(help_text="run, pattern, agent, llm or tool.")
    status = serializers.CharField(help_text="running, completed, failed or cancelled.")
    agent_id = BlankAsNullField()
    provider_id = BlankAsNullField()
    provider_kind = BlankAsNullField()
    model = BlankAsNullField()
    error = BlankAsNullField()
    tokens = TraceTokensSerializer(source="*")
    children = serializers.SerializerMethodField()

    class Meta:
        model = Span
        fields = [
            "id",
            "parent_id",
            "kind",
            "name",
            "status",
            "agent_id",
            "provider_id",
            "provider_kind",
            "model",
            "started_at",
            "ended_at",
            "duration_ms",
            "tokens",
            "cost_usd",
            "attributes",
            "error",
            "children",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/Span"}})
    def get_children(self, span) -> list:
        return SpanSerializer(getattr(span, "tree_children", []), many=True).data


class TraceSerializer(RenderedFields, serializers.ModelSerializer):
    """A run as a trace, with its totals (list view)."""

    user_id = serializers.CharField(allow_null=True)
    kind = serializers.CharField(help_text="agent_test, orchestration or deployment.")
    status = serializers.CharField(help_text="queued, running, waiting, completed, failed or cancelled.")
    attempts = serializers.IntegerField(
        help_text="Executions of the run: 1, plus one per resume after its process died (a resume after "
        "an approval is no attempt); past STUDIO_RUN_MAX_ATTEMPTS it fails. 0 while queued."
    )
    agent_id = BlankAsNullField()
    orchestration_id = BlankAsNullField()
    deployment_id = BlankAsNullField()
    tokens = TraceTokensSerializer(source="*")
    span_count = serializers.IntegerField()

    class Meta:
        model = Run
        fields = [
            "id",
            "trace_id",
            "kind",
            "status",
            "attempts",
            "agent_id",
            "orchestration_id",
            "deployment_id",
            "user_id",
            "created_at",
            "started_at",
            "completed_at",
            "execution_time_ms",
            "tokens",
            "cost_usd",
            "error",
            "span_count",
        ]
        read_only_fields = fields


class TraceDetailSerializer(TraceSerializer):
    """The run with its input, output and span tree."""

    span_count = serializers.SerializerMethodField()
    spans = serializers.SerializerMethodField()

    class Meta(TraceSerializer.Meta):
        fields = [*TraceSerializer.Meta.fields, "input", "output", "heartbeat_at", "spans"]
        read_only_fields = fields

    def get_span_count(self, run) -> int:
        def count(spans):
            return sum(1 + count(span.tree_children) for span in spans)

        return count(run.span_roots)

    @extend_schema_field(SpanSerializer(many=True))
    def get_spans(self, run):
        return SpanSerializer(run.span_roots, many=True).data


class MetricPointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField(help_text="Start of the bucket (UTC).")
    value = serializers.FloatField(help_text="An integer for counts, USD for cost, milliseconds for latency.")


class MetricSeriesSerializer(serializers.Serializer):
    metric = serializers.CharField()
    period = serializers.CharField()
    interval = serializers.CharField(help_text="Bucket width: minute, hour or day.")
    points = MetricPointSerializer(many=True)


class UsageTotalsSerializer(RenderedFields, serializers.Serializer):
    executions = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    tokens = serializers.IntegerField()


class UsageAgentSerializer(UsageTotalsSerializer):
    agent_id = serializers.CharField(allow_null=True, help_text="null: runs not tied to one agent.")
    name = serializers.CharField(allow_null=True, help_text="null when the agent was deleted since.")


class UsageDaySerializer(UsageTotalsSerializer):
    date = serializers.DateField()


class UsageSerializer(RenderedFields, serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_executions = serializers.IntegerField()
    total_cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    total_tokens = serializers.IntegerField()
    by_agent = UsageAgentSerializer(many=True)
    by_day = UsageDaySerializer(many=True)


class AgentUsageSerializer(RenderedFields, serializers.Serializer):
    agent_id = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_executions = serializers.IntegerField()
    total_cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    total_tokens = serializers.IntegerField()
    by_day = UsageDaySerializer(many=True)
