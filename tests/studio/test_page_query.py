"""studio.api.page_query: a plain list's page query is compiled once per shape and then run with the
request's values, the same statement, rows and count the ORM gives for it; lists of other shapes
go through the ORM."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models import Q, Value
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, AgentVersion, McpServer
from agents.selectors import agent_search_q, agent_version_list
from studio.api import page_query
from studio.api.page_query import TOTAL, with_count
from studio.api.pagination import page_with_count
from tests.agents.factories import make_agent, make_mcp_server

pytestmark = pytest.mark.django_db

PAGES = [(0, 2), (2, 2), (3, 20), (0, 100), (40, 20)]


@pytest.fixture
def lists(organization, other_org_owner, owner):
    """(label, queryset) of lists of every kind, several of the same values but other shapes."""
    start = timezone.now()
    kinds = [
        ("active", "chat"),
        ("draft", "task"),
        ("active", "task"),
        ("deprecated", "rag"),
        ("draft", "chat"),
    ]
    agents = [
        make_agent(
            organization,
            name=f"agent {i}" if i != 2 else "50% off_sale",
            description="same" if i % 2 else "other",
            status=status,
            agent_type=agent_type,
            created_by=owner if i % 2 else None,
            created_at=start - dt.timedelta(seconds=i),
        )
        for i, (status, agent_type) in enumerate(kinds)
    ]
    make_agent(other_org_owner.organization, name="agent 0", description="same")
    for i in range(3):
        AgentVersion.objects.create(
            agent=agents[0],
            version=f"1.0.{i}",
            config_yaml="x",
            config={"n": i},
            created_at=start - dt.timedelta(i),
        )
    make_mcp_server(organization, name="b")
    make_mcp_server(organization, name="a")
    make_mcp_server(other_org_owner.organization, name="c")
    mine = Agent.objects.filter(organization_id=organization.pk)
    return [
        ("the organization's agents", mine),
        ("by the organization", Agent.objects.filter(organization=organization)),
        ("another organization's", Agent.objects.filter(organization=other_org_owner.organization)),
        ("by status", mine.filter(status="active")),
        ("by type", mine.filter(agent_type="chat")),
        ("status and type", mine.filter(status="active", agent_type="task")),
        ("name is a value", mine.filter(name="same")),
        ("description is the same value", mine.filter(description="same")),
        ("search", mine.filter(agent_search_q("same"))),
        ("search with LIKE's wildcards", mine.filter(agent_search_q("50% off_"))),
        ("search and status", mine.filter(agent_search_q("agent")).filter(status="draft")),
        ("two statuses", mine.filter(status__in=["active", "draft"])),
        ("three statuses", mine.filter(status__in=["active", "draft", "deprecated"])),
        ("not a draft", mine.exclude(status="draft")),
        ("no creator", mine.filter(created_by__isnull=True)),
        ("a creator", mine.filter(created_by__isnull=False)),
        ("by name", mine.order_by("name")),
        ("by name, descending", mine.order_by("-name", "id")),
        ("reversed", mine.reverse()),
        ("no ordering", mine.order_by()),
        ("nothing matches", mine.filter(status__in=[])),
        ("every agent", Agent.objects.all()),
        ("versions", agent_version_list(agent=agents[0])),
        ("MCP servers", McpServer.objects.filter(organization_id=organization.pk)),
        ("prefetched versions", mine.prefetch_related("versions")),
        # through the ORM: a join, related rows, an annotation, an expression, deferred fields
        ("by the creator's email", mine.filter(created_by__email=owner.email)),
        ("with the organization", mine.select_related("organization")),
        ("annotated", mine.annotate(one=Value(1))),
        ("an expression", mine.filter(Q(name=Value("agent 1")))),
        ("deferred", mine.defer("config_yaml")),
    ]


def state(rows):
    return [
        (type(row), {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields})
        for row in rows
    ]


def orm_page(queryset, start, limit):
    """What the ORM runs and returns for the page (the page query before it was cached)."""
    with CaptureQueriesContext(connection) as queries:
        rows = list(with_count(queryset)[start : start + limit])
    count = [row.__dict__.pop(TOTAL) for row in rows][-1:] or [None]
    return [q["sql"] for q in queries], state(rows), count[0]


def test_every_page_is_the_statement_rows_and_count_the_orm_gives(lists):
    for round_ in (1, 2):  # the second round with every shape compiled
        for label, queryset in lists:
            for start, limit in PAGES:
                sql, rows, count = orm_page(queryset, start, limit)
                with CaptureQueriesContext(connection) as queries:
                    got_rows, got_count = page_with_count(queryset._chain(), start=start, limit=limit)
                where = f"{label}, page {start}:{start + limit}, round {round_}"
                assert state(got_rows) == rows, where
                if rows:
                    assert (got_count, [q["sql"] for q in queries]) == (count, sql), where
                    assert not any(TOTAL in vars(row) for row in got_rows), where


def test_a_shape_is_compiled_once_and_then_run_with_each_requests_values(organization, other_org_owner):
    make_agent(organization, status="active")
    make_agent(other_org_owner.organization, status="active")
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        if not self.query.subquery:  # a statement, not the count within it
            compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    def page(queryset):
        compiled.clear()
        rows, count = page_with_count(queryset, start=0, limit=20)
        return len(compiled), [row.organization_id for row in rows], count

    SQLCompiler.as_sql = counted
    try:
        page_query._plans.clear()
        first = page(Agent.objects.filter(organization_id=organization.pk, status="active"))
        other = page(Agent.objects.filter(organization_id=other_org_owner.organization_id, status="active"))
        another_shape = page(Agent.objects.filter(organization_id=organization.pk, status="draft"))
        assert first == (1, [organization.pk], 1)  # the ORM compiles the first page once (the check)
        assert other == (0, [other_org_owner.organization_id], 1)
        assert another_shape == (0, [], 0)  # the same shape with another value
        joined = page(Agent.objects.filter(organization__name=organization.name))
        assert joined[0] >= 1 and joined[1:] == ([organization.pk], 1)  # a join: the ORM each time
    finally:
        SQLCompiler.as_sql = as_sql
