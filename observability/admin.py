from django.contrib import admin
from django.utils import timezone

from observability.models import AuditLog, Run, Span
from studio.admin_links import name_of, named_record_link, record_link


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is written by executions only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "actor_email",
        "operation_type",
        "model_name",
        "record_id",
        "ip_address",
    ]
    list_filter = ["operation_type", "model_name"]
    search_fields = ["record_id", "actor_email", "organization__name"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"


class SpanInline(admin.TabularInline):
    model = Span
    fields = [
        "kind",
        "name",
        "status",
        "model",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "parent",
    ]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    has_add_permission = ReadOnlyAdmin.has_add_permission
    has_change_permission = ReadOnlyAdmin.has_change_permission
    has_delete_permission = ReadOnlyAdmin.has_delete_permission


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    # Short cells, so that a laptop's screen shows every column beside the menu and the filters
    # (the kind is a filter).
    list_display = ["short_id", "target", "organization", "status", "created", "duration", "cost"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "agent_id", "orchestration_id", "deployment_id", "trace_id"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    inlines = [SpanInline]
    fields = [
        "id",
        "organization",
        "user",
        "kind",
        "agent",
        "orchestration",
        "deployment",
        "status",
        "input",
        "output",
        "error",
        "trace_id",
        "created_at",
        "started_at",
        "completed_at",
        "heartbeat_at",
        "attempts",
        "execution_time_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # The names of what ran, for the whole list page in its one query.
        return (
            super()
            .get_queryset(request)
            .annotate(
                agent_name=name_of("agent_id", "agents.Agent"),
                orchestration_name=name_of("orchestration_id", "orchestrations.Orchestration"),
            )
        )

    @admin.display(description="run", ordering="id")
    def short_id(self, run):
        return f"{run.pk[:12]}…"

    @admin.display(description="agent / orchestration")
    def target(self, run):
        if run.agent_id:
            return record_link(run.agent_id, run.agent_name)
        return record_link(run.orchestration_id, run.orchestration_name)

    @admin.display(description="created", ordering="created_at")
    def created(self, run):
        return f"{timezone.localtime(run.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="ms", ordering="execution_time_ms")
    def duration(self, run):
        return run.execution_time_ms

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, run):
        return f"{run.cost_usd:.6f}"

    @admin.display(description="agent")
    def agent(self, run):
        return named_record_link(run.agent_id)

    @admin.display(description="orchestration")
    def orchestration(self, run):
        return named_record_link(run.orchestration_id)

    @admin.display(description="deployment")
    def deployment(self, run):
        return named_record_link(run.deployment_id)


@admin.register(Span)
class SpanAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "kind", "name", "status", "model", "duration_ms", "cost_usd"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "run__id", "model"]
    list_select_related = ["run"]
    fields = [
        "id",
        "run",
        "parent",
        "organization",
        "kind",
        "name",
        "agent",
        "provider",
        "provider_kind",
        "model",
        "status",
        "started_at",
        "ended_at",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "attributes",
        "error",
        "budget_holds",
    ]
    readonly_fields = fields

    @admin.display(description="agent")
    def agent(self, span):
        return named_record_link(span.agent_id)

    @admin.display(description="provider")
    def provider(self, span):
        return named_record_link(span.provider_id)
