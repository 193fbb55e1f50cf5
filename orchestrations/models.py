"""Orchestrations: saved agents composed by one of the multi-agent patterns."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from orchestrations.patterns import PATTERNS
from studio.ids import PrefixedIdField


class Orchestration(models.Model):
    """`agent_ids` is ordered: a position's role comes from the pattern (e.g. the router first).
    `config` is the validated pattern config of `config_yaml` with every default filled in."""

    Pattern = models.TextChoices("Pattern", [(pattern_id, pattern_id) for pattern_id in PATTERNS])

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        DEPRECATED = "deprecated"

    id = PrefixedIdField("orch")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    pattern = models.CharField(max_length=30, choices=Pattern.choices)
    config_yaml = models.TextField(blank=True)
    config = models.JSONField(default=dict)
    agent_ids = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return self.name


class Approval(models.Model):
    """A person's decision a run waits for (see `orchestrations.approvals`): a tool call of an agent
    (`subject`: the tool and its arguments) or an orchestration step's output. `key` is its place
    in the run (the call or step key), so the run's replay finds it when the run resumes."""

    class Kind(models.TextChoices):
        TOOL = "tool"
        STEP = "step"

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"  # its run was cancelled while it waited

    class OnTimeout(models.TextChoices):
        REJECT = "reject"
        FAIL = "fail"

    id = PrefixedIdField("appr")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("observability.Run", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=400)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    subject = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    on_timeout = models.CharField(max_length=10, choices=OnTimeout.choices, default=OnTimeout.REJECT)
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="approval_one_per_run_key")]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} approval {self.pk} ({self.status})"
