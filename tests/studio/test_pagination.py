"""studio.api.pagination: a page and the count of its list in one query, the same rows and count as
a separate count and slice would give; lists whose count is not the number of their rows (or that
count in a way of their own) keep their own count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count, QuerySet
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from studio.api.pagination import TOTAL, page_with_count
from tests.agents.factories import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def agents(organization, other_org_owner):
    make_agent(other_org_owner.organization)  # not in the list: the count is of the list's rows
    return [make_agent(organization, name=f"a{i}") for i in range(5)]


def page(queryset, start, limit):
    with CaptureQueriesContext(connection) as queries:
        rows, count = page_with_count(queryset, start=start, limit=limit)
    return rows, count, len(queries)


def test_the_page_and_its_count_are_one_query(organization, agents):
    listed = Agent.objects.filter(organization=organization).order_by("name")

    rows, count, queries = page(listed, 1, 2)

    assert (count, queries) == (5, 1)
    assert [agent.pk for agent in rows] == [agent.pk for agent in list(listed)[1:3]]
    assert not any(hasattr(agent, TOTAL) for agent in rows)  # rows as the queryset returns them


def test_rows_as_dicts_are_paged_without_the_count_among_their_keys(organization, agents):
    listed = Agent.objects.filter(organization=organization).order_by("name").values("id", "name")

    rows, count, queries = page(listed, 0, 3)

    assert (count, queries) == (5, 1)
    assert rows == list(listed)[:3]


def test_an_empty_first_page_is_one_query_and_one_past_the_end_counts_on_its_own(organization, agents):
    assert page(Agent.objects.filter(organization=organization, name="none"), 0, 20) == ([], 0, 1)
    assert page(Agent.objects.filter(organization=organization), 5, 20) == ([], 5, 2)
    assert page(Agent.objects.filter(organization=organization), 10**20, 20) == ([], 5, 1)


class CountedElsewhere(QuerySet):
    def count(self):  # as the trace list counts whole days from the daily rollup, without a query
        return 42


def test_lists_that_count_otherwise_keep_their_own_count(organization, agents):
    own = CountedElsewhere(Agent).filter(organization=organization)
    rows, count, queries = page(own, 0, 2)
    assert (len(rows), count, queries) == (2, 42, 1)

    grouped = Agent.objects.filter(organization=organization).values("status").annotate(n=Count("id"))
    rows, count, queries = page(grouped.order_by("status"), 0, 20)
    assert (rows, count, queries) == ([{"status": "draft", "n": 5}], 1, 2)

    distinct = Agent.objects.filter(organization=organization).values("status").distinct()
    assert page(distinct.order_by("status"), 0, 20)[1:] == (1, 2)
