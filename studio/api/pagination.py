"""`?page=1&limit=20` pagination with the `{count, page, limit, results}` envelope.

The page and its count are one query: the page's rows carry the count of the whole list as an
uncorrelated scalar subquery (`(SELECT COUNT(*) FROM ... WHERE <the list's filters>)`), which the
database evaluates once, with the plan a separate count would have had, while the page keeps its
own (an ORDER BY ... LIMIT that stops after the page's rows). `COUNT(*) OVER ()` would be one query
too, but it reads every row of the list, with its per-row subqueries, before the LIMIT: at 1M runs
that is the whole ledger. Only an empty page past the first needs the count on its own. A list
whose count is not that of its rows (grouped, distinct, a union) or that counts in a way of its own
(a queryset overriding `count()`, e.g. the trace list from the daily rollup) counts separately.
A plain list's page query is compiled once per shape of the list (studio.api.page_query)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.query import ModelIterable, ValuesIterable
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from studio.api.page_query import TOTAL, page_rows_cached, with_count

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _positive_int(request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"'{raw}' is not a whole number."]}) from None
    if value < 1:
        raise ValidationError({name: ["Must be 1 or more."]})
    return value


MAX_OFFSET = 2**63 - 1 - MAX_LIMIT  # an OFFSET beyond a 64-bit integer is an error in the database


def page_with_count(queryset, *, start: int, limit: int) -> tuple[list, int]:
    """The rows `start` to `start + limit` of the list and the number of rows in the whole list."""
    if start > MAX_OFFSET:
        return [], queryset.count()  # necessarily past the end
    if not _counts_in_page(queryset):
        count = queryset.count()
        return ([] if start >= count else list(queryset[start : start + limit])), count
    cached = page_rows_cached(queryset, start=start, limit=limit)
    if cached is not None:
        rows, count = cached
    else:
        rows, count = list(with_count(queryset)[start : start + limit]), None
        values = queryset._iterable_class is ValuesIterable
        for row in rows:
            count = (row if values else row.__dict__).pop(TOTAL)
    if not rows:
        return [], (queryset.count() if start else 0)
    return rows, count


def _counts_in_page(queryset) -> bool:
    """Whether the count can come with the page: a plain list of model instances or dicts whose
    count is the number of its rows, counted by Django's own `count()`."""
    if not isinstance(queryset, QuerySet) or type(queryset).count is not QuerySet.count:
        return False
    query = queryset.query
    return (
        queryset._result_cache is None
        and queryset._iterable_class in (ModelIterable, ValuesIterable)
        and not (query.distinct or query.combinator or query.is_sliced or query.extra)
        and query.group_by is None
        and not any(annotation.contains_aggregate for annotation in query.annotations.values())
    )


class StudioPagination(pagination.BasePagination):
    """Bounded page size (limit capped at 100); a page past the end is empty, not an error."""

    def paginate_queryset(self, queryset, request, view=None):
        self.page = _positive_int(request, "page", 1)
        self.limit = min(_positive_int(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
        start = (self.page - 1) * self.limit
        rows, self.count = page_with_count(queryset, start=start, limit=self.limit)
        return rows

    def get_paginated_response(self, data):
        return Response({"count": self.count, "page": self.page, "limit": self.limit, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["count", "page", "limit", "results"],
            "properties": {
                "count": {"type": "integer"},
                "page": {"type": "integer"},
                "limit": {"type": "integer"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
        ]
