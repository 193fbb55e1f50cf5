from django.contrib import admin

from observability.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "user",
        "operation_type",
        "model_name",
        "record_id",
        "ip_address",
    ]
    list_filter = ["operation_type", "model_name"]
    search_fields = ["record_id", "user__email", "organization__name"]
    list_select_related = ["organization", "user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
