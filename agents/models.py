"""Agents and their config history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from studio.ids import PrefixedIdField


class Agent(models.Model):
    """An agent designed in the studio: a version-1 config YAML (see agents.config_schema) plus metadata.

    `config` is the validated, normalized form of `config_yaml`, stored so that runs and lists never
    re-parse YAML."""

    class AgentType(models.TextChoices):
        SIMPLE_QA = "simple_qa"
        CHAT = "chat"
        TASK = "task"
        REACT = "react"
        RAG = "rag"
        CLASSIFIER = "classifier"
        EXTRACTOR = "extractor"
        SUMMARIZER = "summarizer"
        CUSTOM = "custom"

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        DEPRECATED = "deprecated"

    id = PrefixedIdField("agent")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    agent_type = models.CharField(max_length=20, choices=AgentType.choices, default=AgentType.CUSTOM)
    config_yaml = models.TextField()
    config = models.JSONField(default=dict)
    version = models.CharField(max_length=20, default="1.0.0")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    is_public = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "status"]),
        ]

    def __str__(self) -> str:
        return self.name


class AgentVersion(models.Model):
    """A config the agent had before a change (the current one lives on the agent)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=20)
    config_yaml = models.TextField()
    config = models.JSONField(default=dict)
    change_summary = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agent_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent_id}@{self.version}"


class McpServer(models.Model):
    """An MCP server (streamable HTTP) an organization's react agents may call tools of.

    Its auth headers are stored encrypted (MultiFernet, like provider keys) and never shown: reads
    get `headers_hint` (each header's name and the last four characters of its value). Like a
    provider key, they are sent only to the origin of the URL they were given with
    (`headers_origin`). `allowed_tools` (null: all) limits which of the server's tools agents see."""

    id = PrefixedIdField("mcps")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    url = models.CharField(max_length=500)
    headers_encrypted = models.TextField(blank=True)
    headers_hint = models.JSONField(default=list, blank=True)
    headers_origin = models.CharField(
        max_length=520, blank=True, help_text="scheme://host:port of the URL the headers were given with."
    )
    allowed_tools = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="mcp_server_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def allows(self, tool: str) -> bool:
        return self.allowed_tools is None or tool in self.allowed_tools
