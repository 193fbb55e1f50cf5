"""Deployments: an agent or orchestration served outside the studio (HTTP, MCP, CLI), and its keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from studio.ids import PrefixedIdField

CHANNELS = ("api", "mcp", "cli")
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"  # a DNS-label-like slug, 1-63 characters


def all_channels() -> list[str]:
    return list(CHANNELS)


class Deployment(models.Model):
    """An agent or an orchestration (exactly one) callable by name at `/workflows/{name}` and
    `/mcp/{name}`.

    `pinned` is the snapshot of the config the deployment was deployed (or redeployed) with: later
    edits of the agent or orchestration change nothing for callers until the next redeploy. For an
    agent it is `{"kind": "agent", "agent": <spec>}`, for an orchestration `{"kind":
    "orchestration", "name", "description", "pattern", "config", "agents": [<spec>, ...]}`, where a
    spec is the runtime's AgentSpec as JSON (see deployments.pinning)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        STOPPED = "stopped"

    id = PrefixedIdField("deploy")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    # Deleting an agent or orchestration is refused while a running deployment serves it; the stopped
    # deployments of a deleted one go with it (their runs stay in the ledger by id).
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    orchestration = models.ForeignKey(
        "orchestrations.Orchestration", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.SlugField(max_length=63, unique=True)
    channels = models.JSONField(default=all_channels)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    rate_limit_per_minute = models.PositiveIntegerField(default=60)
    pinned = models.JSONField(default=dict, blank=True)
    pinned_version = models.CharField(max_length=40, blank=True)
    pinned_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(agent__isnull=False, orchestration__isnull=True)
                | Q(agent__isnull=True, orchestration__isnull=False),
                name="deployment_serves_exactly_one_target",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["running", "stopped"]), name="deployment_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "status"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def target_id(self) -> str:
        return self.agent_id or self.orchestration_id

    @property
    def target_kind(self) -> str:
        return "agent" if self.agent_id else "orchestration"


class DeploymentKey(models.Model):
    """A key that opens one deployment. Only its SHA-256 hash is stored; `prefix` (the key's first
    characters) identifies it in lists and narrows the lookup."""

    id = PrefixedIdField("dkey")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=32)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "prefix"])]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


WEBHOOK_EVENTS = (
    "run.completed",
    "run.failed",
    "approval.requested",
    "approval.resolved",
    "deployment.stopped",
    "budget.exceeded",
)


class Webhook(models.Model):
    """An endpoint of the organization that is sent the events it subscribes to, signed with its
    secret (stored encrypted like provider keys; shown once, at creation). Disabled after
    `STUDIO_WEBHOOK_DISABLE_AFTER_FAILURES` deliveries in a row failed for good."""

    id = PrefixedIdField("whk")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2048)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField()
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "is_active"])]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event sent to one webhook: the signed body, and every attempt at sending it (`attempt_log`,
    at most as many as the retry schedule allows). A pending delivery is due at `next_attempt_at`;
    whichever process claims it first makes the attempt."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    SNIPPET_CHARS = 512  # of the receiver's answer, kept for the operator

    id = PrefixedIdField("whd")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_snippet = models.CharField(max_length=SNIPPET_CHARS, blank=True)
    error = models.CharField(max_length=300, blank=True)
    attempt_log = models.JSONField(default=list, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "-created_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "failed"]),
                name="webhook_delivery_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.webhook_id}"
