"""Reads of traces: runs with their span trees."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from observability.models import Run, Span
from observability.rollup import live_run_count

# Traces ---------------------------------------------------------------------------------------------


class TraceQuerySet(QuerySet):
    """The trace list. While it is filtered only by its organization and creation bounds,
    `count()` (the paginator's) counts whole sealed days from the daily rollup and reads only the
    other runs (`live_run_count`) instead of counting every run of the range."""

    whole_organization: str | None = None
    created_since: dt.datetime | None = None
    created_until: dt.datetime | None = None

    def _clone(self):
        clone = super()._clone()
        clone.whole_organization = self.whole_organization
        clone.created_since, clone.created_until = self.created_since, self.created_until
        return clone

    def _filter_or_exclude(self, negate, args, kwargs):
        clone = super()._filter_or_exclude(negate, args, kwargs)
        if negate or args or not set(kwargs) <= _CREATION_BOUNDS:
            clone.whole_organization = None
            return clone
        if (since := kwargs.get("created_at__gte")) is not None:
            clone.created_since = since if clone.created_since is None else max(since, clone.created_since)
        if (until := kwargs.get("created_at__lte")) is not None:
            clone.created_until = until if clone.created_until is None else min(until, clone.created_until)
        return clone

    def count(self) -> int:
        if self.whole_organization is None or self._result_cache is not None:
            return super().count()
        return live_run_count(self.whole_organization, since=self.created_since, until=self.created_until)


_CREATION_BOUNDS = {"created_at__gte", "created_at__lte"}


def trace_list(*, organization_id: str) -> QuerySet[Run]:
    """The organization's runs, newest first, each annotated with `span_count` (a correlated
    subquery, evaluated only for the rows of the page)."""
    spans = (
        Span.objects.filter(run_id=OuterRef("pk"))
        .order_by()
        .values("run_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    runs = TraceQuerySet(Run).filter(organization_id=organization_id)
    runs.whole_organization = organization_id
    return runs.annotate(span_count=Coalesce(Subquery(spans, output_field=IntegerField()), 0)).order_by(
        "-created_at", "-id"
    )


def trace_get(*, organization_id: str, run_id: str) -> tuple[Run, list[Span]] | None:
    """The run and the roots of its span tree (two queries), or None when it is not the
    organization's. Every span carries its children, in start order, as `tree_children`."""
    run = Run.objects.filter(organization_id=organization_id, pk=run_id).first()
    if run is None:
        return None
    return run, span_tree(Span.objects.filter(run_id=run.pk).order_by("started_at", "id"))


def span_tree(spans: Iterable[Span]) -> list[Span]:
    """Nests spans under their parents (`tree_children`), keeping the order they come in. A span
    whose parent is missing becomes a root rather than disappearing."""
    spans = list(spans)
    by_id = {span.pk: span for span in spans}
    roots = []
    for span in spans:
        span.tree_children = []
    for span in spans:
        parent = by_id.get(span.parent_id) if span.parent_id else None
        (parent.tree_children if parent is not None else roots).append(span)
    return roots
