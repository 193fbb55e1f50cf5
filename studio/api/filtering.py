"""The filter backend of every list: django-filter's, without its cost when nothing is filtered.

django-filter builds a FilterSet and validates a form on every request, filter parameters or not
(about 0.3 ms of a 20-row list, benchmarks/README.md "Request cost"). A request that names none of
the FilterSet's filters gets the queryset as it is: what the FilterSet would have returned, since
an absent optional filter filters nothing."""

from __future__ import annotations

from django import forms
from django_filters.rest_framework import DjangoFilterBackend


class StudioFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not _filters_anything(filterset_class, request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)


def _filters_anything(filterset_class, params) -> bool:
    """Whether the query may filter: it names a filter (a prefix: range filters take `name_min`,
    ...), or the FilterSet could refuse or narrow even an empty query (a required filter, a form
    of its own)."""
    filters = filterset_class.base_filters
    if filterset_class._meta.form is not forms.Form:
        return True
    if any(f.extra.get("required") for f in filters.values()):
        return True
    return any(param.startswith(name) for param in params for name in filters)
