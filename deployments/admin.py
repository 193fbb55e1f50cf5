from django.contrib import admin, messages

from deployments import services
from deployments.models import Deployment, DeploymentKey


class DeploymentKeyInline(admin.TabularInline):
    """Keys by prefix; only their hashes are stored, so the admin never shows a key."""

    model = DeploymentKey
    fields = ["id", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _set_status(modeladmin, request, queryset, change) -> None:
    changed = 0
    for deployment in queryset:
        before = deployment.status
        deployment = change(user=request.user, deployment=deployment)
        changed += deployment.status != before
    modeladmin.message_user(request, f"{changed} deployment(s) changed.", messages.SUCCESS)


@admin.action(description="Stop selected deployments")
def stop(modeladmin, request, queryset):
    _set_status(modeladmin, request, queryset, services.deployment_stop)


@admin.action(description="Start selected deployments")
def start(modeladmin, request, queryset):
    _set_status(modeladmin, request, queryset, services.deployment_start)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    """Operators inspect deployments and stop or start them (audited like the API's stop/start).
    Deployments are created, redeployed and given keys through the API."""

    list_display = [
        "name",
        "organization",
        "status",
        "agent",
        "orchestration",
        "pinned_version",
        "created_at",
    ]
    list_filter = ["status", "organization"]
    list_select_related = ["organization", "agent", "orchestration"]
    search_fields = ["id", "name", "organization__name"]
    actions = [stop, start]
    fields = [
        "id",
        "organization",
        "name",
        "agent",
        "orchestration",
        "channels",
        "status",
        "rate_limit_per_minute",
        "pinned_version",
        "pinned_at",
        "pinned",
        "created_by",
        "created_at",
        "started_at",
        "stopped_at",
    ]
    readonly_fields = fields
    inlines = [DeploymentKeyInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
