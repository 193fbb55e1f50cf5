"""The page-with-count query of a plain list, compiled once per shape of the list.

Building the annotated query and compiling it costs about as much as the database takes to run it
(0.19 of 0.45 ms for a page of 20 agents, benchmarks/README.md "Request cost"), and it is the same
SQL each time but for the values of the list's filters. A list of one table's rows, filtered by
lookups on its own columns with plain values, is compiled by the ORM once per connection and
shape; later pages of that shape bind their values to the cached SQL.

The shape is everything the SQL depends on: the model, the SQL of the list's WHERE clause (with
its placeholders, so `status=` and `search=` lists, an `__in` of 2 values and one of 3 are
different shapes), its ordering and the connection. The filters' values are the parameters of
that WHERE clause, compiled per request (a few µs): the ORM's own compilation of the first page
of a shape is checked to be the cached SQL with those parameters, once for the count's subquery
and once for the page, or the shape is never cached. LIMIT and OFFSET are the ORM's own
`limit_offset_sql`, which ends the statement. The rows become instances through the ORM's own
converters and `Model.from_db`, as `ModelIterable` does. Anything else (joins, annotations,
`select_related`, deferred fields, `.values()`, an expression among the filters) is None here,
and pagination runs it through the ORM."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections
from django.db.models import Func, IntegerField, Subquery
from django.db.models.expressions import Col
from django.db.models.lookups import Lookup
from django.db.models.query import ModelIterable, prefetch_related_objects
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.where import WhereNode

TOTAL = "_studio_list_count"  # the annotation holding the list's count on each row of the page
COUNT_ALL = Func(template="COUNT(*)", output_field=IntegerField())


def with_count(queryset):
    """The list's rows, each with the count of the whole list (an uncorrelated scalar subquery)."""
    return queryset.annotate(**{TOTAL: Subquery(_count_query(queryset.query))})


def _count_query(query):
    counting = query.chain()
    counting.clear_ordering(force=True)
    counting.clear_select_clause()
    counting.add_annotation(COUNT_ALL, TOTAL)
    return counting


@dataclass(frozen=True)
class _Plan:
    sql: str  # the page's statement up to its LIMIT
    init_list: tuple[str, ...]  # the model's attribute names, in the order of the row's columns
    fields_end: int
    count_at: int  # the column holding the list's count
    converters: tuple  # (position, converters, expression), as the compiler applies them


_UNCACHEABLE = object()
# connection -> shape -> _Plan or _UNCACHEABLE; per connection because the converters are
# bound to it (its operations, its time zone).
_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def page_rows_cached(queryset, *, start: int, limit: int) -> tuple[list, int | None] | None:
    """The page's rows and the list's count (None when the page is empty) as
    `with_count(queryset)[start : start + limit]` gives them, or None (nothing run) when the
    list's shape is not one this module caches."""
    shape = _shape(queryset)
    if shape is None:
        return None
    db, key, where_params = shape
    connection = connections[db]
    plans = _plans.get(connection)
    if plans is None:
        plans = _plans[connection] = {}
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = _compile(queryset, connection, where_params)
    if plan is _UNCACHEABLE:
        return None
    sql = f"{plan.sql} {connection.ops.limit_offset_sql(start, start + limit)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, (*where_params, *where_params))
        fetched = cursor.fetchall()
    rows, count = [], None
    from_db, init_list, fields_end = queryset.model.from_db, plan.init_list, plan.fields_end
    for values in fetched:
        if plan.converters:
            values = list(values)
            for position, converters, expression in plan.converters:
                value = values[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                values[position] = value
        rows.append(from_db(db, init_list, values[:fields_end]))
        count = values[plan.count_at]
    if rows and queryset._prefetch_related_lookups:
        prefetch_related_objects(rows, *queryset._prefetch_related_lookups)
    return rows, count


def _shape(queryset) -> tuple[str, tuple, list] | None:
    """(database alias, the shape's key, the WHERE clause's parameters), or None."""
    query = queryset.query
    if not (
        queryset._iterable_class is ModelIterable
        and queryset._fields is None
        and not queryset._known_related_objects
        and query.default_cols
        and not query.select
        and not query.select_related
        and not query.annotations
        and not query.extra
        and not query.extra_tables
        and query.extra_order_by == ()
        and query.deferred_loading == (frozenset(), True)
        and not query.distinct
        and not query.select_for_update
        and query.combinator is None
        and query.group_by is None
        and not query.is_sliced
        and all(type(name) is str for name in query.order_by)
    ):
        return None
    # One table: joins a filter made and trimmed again stay in alias_map, unreferenced.
    alias, *others = query.alias_map or [None]  # none yet: nothing filters
    if alias is not None and not isinstance(query.alias_map[alias], BaseTable):
        return None
    if any(query.alias_refcount[other] for other in others):
        return None
    if not _plain_filters(query.where, alias):
        return None
    db = queryset.db
    compiler = query.get_compiler(using=db)
    try:
        where_sql, where_params = compiler.compile(query.where)
    except FullResultSet:
        where_sql, where_params = "", []
    except EmptyResultSet:  # a filter no row matches: the ORM runs no query for it
        return None
    key = (
        queryset.model,
        alias,
        where_sql,
        query.order_by,
        query.default_ordering,
        query.standard_ordering,
    )
    return db, key, list(where_params)


def _plain_filters(node, alias: str) -> bool:
    """Whether every filter is a lookup on a column of the list's own table with a plain value
    (no expression, subquery or raw SQL), so that the WHERE clause's SQL names the shape."""
    for child in node.children:
        if isinstance(child, WhereNode):
            if not _plain_filters(child, alias):
                return False
        elif not (
            isinstance(child, Lookup)
            and type(child.lhs) is Col
            and child.lhs.alias == alias
            and _plain_value(child.rhs)
        ):
            return False
    return True


def _plain_value(value) -> bool:
    if isinstance(value, list | tuple | set | frozenset):
        return all(_plain_value(item) for item in value)
    return not hasattr(value, "resolve_expression")


def _compile(queryset, connection, where_params: list):
    """The shape's plan from the ORM's own compilation of its first page, or _UNCACHEABLE when
    that is not the WHERE clause's parameters bound twice followed by LIMIT/OFFSET."""
    paged = with_count(queryset)[0:1]
    compiler = paged.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    suffix = " " + connection.ops.limit_offset_sql(0, 1)
    select = compiler.select[: compiler.col_count]
    klass_info = compiler.klass_info
    fields = klass_info["select_fields"]
    if (
        not sql.endswith(suffix)
        or tuple(params) != (*where_params, *where_params)
        or compiler.annotation_col_map != {TOTAL: len(select) - 1}
        or fields != list(range(len(select) - 1))
        or compiler.has_composite_fields([s[0] for s in select])
    ):
        return _UNCACHEABLE
    converters = compiler.get_converters([s[0] for s in select])
    return _Plan(
        sql=sql[: -len(suffix)],
        init_list=tuple(s[0].target.attname for s in select[: len(fields)]),
        fields_end=len(fields),
        count_at=len(select) - 1,
        converters=tuple(
            (position, tuple(convs), expression) for position, (convs, expression) in converters.items()
        ),
    )
