from django.contrib import admin, messages
from django.db.models import Max
from django.http import Http404
from django.shortcuts import redirect
from django.urls import re_path
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from deployments import services, webhooks
from deployments.models import Deployment, DeploymentKey, Webhook, WebhookDelivery
from studio.admin import AuditedAdmin
from studio.admin_links import record_link


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


STATUS_CHANGES = {"stop": services.deployment_stop, "start": services.deployment_start}


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
        "target",
        "channel_list",
        "version",
        "last_used",
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

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(last_used_at=Max("keys__last_used_at"))

    @admin.display(description="serves")
    def target(self, deployment):
        return record_link(deployment.target_id, str(deployment.agent or deployment.orchestration))

    @admin.display(description="version", ordering="pinned_version")
    def version(self, deployment):
        return deployment.pinned_version

    @admin.display(description="channels")
    def channel_list(self, deployment):
        return ", ".join(deployment.channels) or "-"

    @admin.display(description="last used", ordering="last_used_at", empty_value="never")
    def last_used(self, deployment):
        return deployment.last_used_at

    def get_urls(self):
        status_change = self.admin_site.admin_view(self.status_change_view)
        pattern = r"^(?P<object_id>.+)/(?P<change>stop|start)/$"
        return [re_path(pattern, status_change, name="deployments_deployment_status"), *super().get_urls()]

    @method_decorator(require_POST)
    def status_change_view(self, request, object_id, change):
        """The Stop/Start button of a deployment's page (deployments/templates/admin/deployments/
        deployment/change_form.html): the same audited change as the list's actions."""
        deployment = self.get_object(request, object_id)
        if deployment is None or not self.has_view_permission(request, deployment):
            raise Http404
        _set_status(self, request, [deployment], STATUS_CHANGES[change])
        return redirect("admin:deployments_deployment_change", deployment.pk)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.action(description="Enable selected webhooks")
def enable_webhooks(modeladmin, request, queryset):
    enabled = 0
    for webhook in queryset.filter(is_active=False):
        webhooks.webhook_enable(user=request.user, webhook=webhook)
        enabled += 1
    modeladmin.message_user(request, f"{enabled} webhook(s) enabled.", messages.SUCCESS)


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin, admin.ModelAdmin):
    """Operators inspect webhooks, enable disabled ones and delete them (audited). The secret is
    never shown; webhooks are created through the API, which shows it once."""

    list_display = ["url", "organization", "is_active", "consecutive_failures", "created_at"]
    list_filter = ["is_active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["id", "url", "organization__name"]
    actions = [enable_webhooks]
    fields = [
        "id",
        "organization",
        "url",
        "events",
        "description",
        "is_active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedAdmin, admin.ModelAdmin):
    """Deliveries and their attempts, read-only."""

    list_display = ["id", "event", "webhook", "status", "attempts", "status_code", "created_at"]
    list_filter = ["status", "event"]
    list_select_related = ["webhook"]
    search_fields = ["id", "webhook__id", "webhook__url"]
    fields = [
        "id",
        "webhook",
        "event",
        "status",
        "attempts",
        "status_code",
        "error",
        "response_snippet",
        "attempt_log",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
