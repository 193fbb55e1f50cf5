"""The audit trail (and, later, the execution ledger)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from studio.ids import PrefixedIdField


def trace_id_default() -> str:
    return uuid.uuid4().hex


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or delete an audit row: the trail is append-only."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditLogIsAppendOnly("audit rows are never updated")

    def delete(self):
        raise AuditLogIsAppendOnly("audit rows are never deleted")


class AuditLog(models.Model):
    """Who did what to which record. `changes` never holds secrets (redacted on write).

    Append-only, and it outlives its actors and organizations: the organization and user ids are
    kept as written (no database constraint, nothing cascades or is set to null when they are
    deleted) and the actor's email is a snapshot. Rows of a deleted user then show that email; a
    deleted organization's rows stay visible to operators in the admin, with its id."""

    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    user = models.ForeignKey(  # the actor
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_email = models.CharField(max_length=254, blank=True)
    model_name = models.CharField(max_length=80)
    operation_type = models.CharField(max_length=40)
    record_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "model_name", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.operation_type} {self.model_name} {self.record_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditLogIsAppendOnly("audit rows are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly("audit rows are never deleted")


class Run(models.Model):
    """One execution (an agent test, an orchestration, a deployment call): the ledger's unit.

    The agent/orchestration/deployment references are plain ids, not foreign keys: the ledger (and
    usage computed from it) outlives the things it measured."""

    class Kind(models.TextChoices):
        AGENT_TEST = "agent_test"
        ORCHESTRATION = "orchestration"
        DEPLOYMENT = "deployment"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"  # for a person's approval: no process holds it (orchestrations.approvals)
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    id = PrefixedIdField("run")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    agent_id = models.CharField(max_length=40, blank=True, db_index=True)
    orchestration_id = models.CharField(max_length=40, blank=True, db_index=True)
    deployment_id = models.CharField(max_length=40, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # {"code", "message"}
    trace_id = models.CharField(max_length=32, default=trace_id_default, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    execution_time_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    # Executions of the run so far: 1 once started, one more each time it resumes after its process
    # died (observability.replay); past settings.RUN_MAX_ATTEMPTS it fails instead.
    attempts = models.PositiveSmallIntegerField(default=0)
    # The caller's finish hook (`observability.queue.finished_dump`: {"hook", "args"}), applied by
    # whichever execution ends the run: a run that waits for an approval ends in another one.
    finished_hook = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "agent_id", "-created_at"]),
            models.Index(fields=["organization", "status"]),
            models.Index(fields=["organization", "kind", "-created_at"]),  # the trace list by kind
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.kind}, {self.status})"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Span(models.Model):
    """A timed step of a run: the run itself, a pattern step, an agent, an LLM call or a tool call."""

    class Kind(models.TextChoices):
        RUN = "run"
        PATTERN = "pattern"
        AGENT = "agent"
        LLM = "llm"
        TOOL = "tool"

    id = PrefixedIdField("span")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="spans")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    agent_id = models.CharField(max_length=40, blank=True)
    provider_id = models.CharField(max_length=40, blank=True)
    provider_kind = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=20, default="running")
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    attributes = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # An llm call's budget reservations, [[counter id, amount], ...], held while the span is open:
    # if the process dies before the call settles, the reaper releases them from here.
    budget_holds = models.JSONField(default=list, blank=True)
    # Where a pattern step or an agent call stands in its run, the same on every execution of the
    # run (e.g. "2.fan_out/1:<digest>#0"), and what a keyed agent call answered: a resumed run
    # answers the calls it finds recorded here instead of making them again (observability.replay).
    call_key = models.CharField(max_length=200, blank=True)
    output = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["organization", "kind", "started_at"]),
            models.Index(fields=["provider_id", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class RunEvent(models.Model):
    """An execution event as streamed to clients; `seq` increases by 1 within a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    agent_id = models.CharField(max_length=40, blank=True)
    data = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_event_seq_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"


class UsageDailyRollup(models.Model):
    """Usage of runs folded per organization, agent, day and kind: every run of the days before
    the organization's seal (`UsageSeal`) and the runs `prune_runs` deleted, so that usage reads
    add these rows to the raw runs from the seal on (observability.rollup). `agent_id` is blank for
    runs not tied to one agent (orchestrations)."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    agent_id = models.CharField(max_length=40, blank=True)
    date = models.DateField()
    kind = models.CharField(max_length=20, choices=Run.Kind.choices)
    executions = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)

    class Meta:
        ordering = ["date", "agent_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "agent_id", "date", "kind"], name="usage_daily_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["organization", "date"])]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.agent_id or '-'} {self.date} {self.kind}"


class RunDailyRollup(models.Model):
    """One sealed day of an organization's runs as a whole: how many of them the ledger still holds
    (sealing counts them, pruning takes them away), for the trace list's count, and the latency
    percentiles of the finished ones (over their `execution_time_ms`), for the daily buckets of the
    metric series. Percentiles do not add up across agents or days, so they are kept per day and
    organization, where the series needs them."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    runs = models.BigIntegerField(default=0)  # the day's runs still in the ledger
    samples = models.PositiveIntegerField(default=0)  # its finished runs with an execution time
    p50_ms = models.FloatField(null=True)
    p95_ms = models.FloatField(null=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "date"], name="latency_daily_rollup_unique")
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.date}"


class UsageSeal(models.Model):
    """How far the organization's runs are folded into the daily rollups: every run created before
    `sealed_until` (a UTC midnight; null: none yet) is counted there."""

    organization = models.OneToOneField(
        "accounts.Organization", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    sealed_until = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.organization_id} sealed until {self.sealed_until}"
