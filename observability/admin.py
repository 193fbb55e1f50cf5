from django.contrib import admin

from observability.models import AuditLog, Run, Span


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
    list_display = ["id", "organization", "kind", "status", "created_at", "execution_time_ms", "cost_usd"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "agent_id", "orchestration_id", "deployment_id", "trace_id"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    inlines = [SpanInline]


@admin.register(Span)
class SpanAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "kind", "name", "status", "model", "duration_ms", "cost_usd"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "run__id", "model"]
    list_select_related = ["run"]
