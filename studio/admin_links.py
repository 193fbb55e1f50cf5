"""Admin pages link the records they mention. The ledger and the budgets keep ids as plain text
(`agent-…`, `orch-…`, `prov-…`: they outlive what they measured, and apps depend one way), so
their prefix tells which model's change page an id opens."""

from __future__ import annotations

import functools

from django.apps import apps
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from studio.ids import PrefixedIdField


@functools.cache
def _models_by_prefix() -> dict[str, type]:
    return {
        model._meta.pk.prefix: model
        for model in apps.get_models()
        if isinstance(model._meta.pk, PrefixedIdField)
    }


def record_url(record_id: str) -> str | None:
    """The admin change page of the record `record_id` names, None when it has none."""
    model = _models_by_prefix().get(record_id.rpartition("-")[0])
    if model is None:
        return None
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[record_id])
    except NoReverseMatch:  # a model without an admin
        return None


def record_link(record_id: str, label: str | None = None) -> str:
    """`record_id` as a link to its change page, labelled `label` (the record's name) when given."""
    if not record_id:
        return "-"
    url = record_url(record_id)
    if url is None:
        return label or record_id
    return format_html('<a href="{}">{}</a>', url, label or record_id)


def named_record_link(record_id: str) -> str:
    """For a detail page: the link labelled with the record's name and id (one query), or the id
    alone when the record is gone."""
    model = _models_by_prefix().get(record_id.rpartition("-")[0]) if record_id else None
    record = model._default_manager.filter(pk=record_id).first() if model else None
    return record_link(record_id, f"{record} ({record_id})" if record else None)


def name_of(id_field: str, *model_labels: str):
    """An annotation: the `name` of the record whose id is in `id_field`, looked for among
    `model_labels` ("agents.Agent", …) in one query for a whole list page."""
    names = [
        Subquery(apps.get_model(label).objects.filter(pk=OuterRef(id_field)).values("name")[:1])
        for label in model_labels
    ]
    return Coalesce(*names) if len(names) > 1 else names[0]
