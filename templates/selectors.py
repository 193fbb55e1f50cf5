"""Reads of templates: what a user may see (the official templates and their organization's own)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from templates.models import AgentTemplate, OrchestrationTemplate


def template_search_q(term: str) -> Q:
    """Templates whose name or description contains `term` (case-insensitive)."""
    return Q(name__icontains=term) | Q(description__icontains=term)


def agent_template_list(*, user) -> QuerySet[AgentTemplate]:
    """The agent templates the user may see, official ones first, then by name."""
    return AgentTemplate.objects.visible_to(user)


def orchestration_template_list(*, user) -> QuerySet[OrchestrationTemplate]:
    """The orchestration templates the user may see, official ones first, then by name."""
    return OrchestrationTemplate.objects.visible_to(user)


def agent_templates_by_id(*, user, template_ids: Iterable[str]) -> dict[str, AgentTemplate]:
    """`{id: template}` (name and config) of the agent templates among `template_ids` that the user
    may see (one query)."""
    wanted = set(template_ids)
    if not wanted:
        return {}
    return agent_template_list(user=user).only("pk", "name", "config").in_bulk(wanted)
