"""Read serializers that render without building their fields for every instance.

A DRF serializer builds its fields anew for each serializer instance: a `ModelSerializer` by model
introspection (about 0.5 ms a serializer, twice for `/api/auth/me` with its nested organization),
and a list's child once per request. `RenderedFields` builds them once per class, on a prototype
instance, and renders with those fields: the same `get_attribute` and `to_representation` calls DRF
makes, so the output is the same. The class's fields (what drf-spectacular documents and what
`.fields` returns) are unchanged.

Only for serializers whose fields do not depend on the instance or the context: every field must
be one whose rendering reads neither (the plain value fields below, or a nested `RenderedFields`
serializer of such fields); a `SerializerMethodField` is called on the serializer being rendered,
so it may read `self.context`. A class with any other field renders the DRF way.
"""

from __future__ import annotations

from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.fields import SkipField

# Fields whose get_attribute and to_representation read only the value and their own options.
CONTEXT_FREE_FIELDS = (
    drf_fields.BooleanField,
    drf_fields.CharField,
    drf_fields.ChoiceField,
    drf_fields.DateField,
    drf_fields.DateTimeField,
    drf_fields.DecimalField,
    drf_fields.DictField,
    drf_fields.FloatField,
    drf_fields.IntegerField,
    drf_fields.JSONField,
    drf_fields.ListField,
    drf_fields.ReadOnlyField,
    drf_fields.UUIDField,
)

_RENDERING = ("get_attribute", "to_representation")
_METHOD = object()  # a plan entry rendered by a method of the serializer being rendered


class RenderedFields:
    """Mixin for a read (`Serializer` or `ModelSerializer`) subclass; see the module docstring."""

    _plans: dict[type, list | None] = {}

    @classmethod
    def render_plan(cls) -> list | None:
        """[(name, field or _METHOD, method name)] of the readable fields, bound to a prototype
        instance built once; None when a field's rendering may read the instance or context."""
        try:
            return cls._plans[cls]
        except KeyError:
            # Built without a lock (a nested serializer's plan is built inside): two threads that
            # build at once build the same plan, and the first one stored is kept.
            return cls._plans.setdefault(cls, _plan_of(cls()))

    def to_representation(self, instance):
        plan = self.render_plan()
        if plan is None:
            return super().to_representation(instance)
        rendered = {}
        for name, field, method_name in plan:
            if field is _METHOD:
                rendered[name] = getattr(self, method_name)(instance)
                continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            rendered[name] = None if attribute is None else field.to_representation(attribute)
        return rendered


def _plan_of(prototype: serializers.BaseSerializer) -> list | None:
    plan = []
    for field in prototype._readable_fields:
        if isinstance(field, serializers.SerializerMethodField):
            plan.append((field.field_name, _METHOD, field.method_name))
        elif _context_free(field):
            plan.append((field.field_name, field, None))
        else:
            return None
    return plan


def _context_free(field) -> bool:
    if isinstance(field, serializers.ListSerializer):
        return _context_free(field.child)
    if isinstance(field, RenderedFields):
        plan = field.render_plan()
        return plan is not None and all(entry[1] is not _METHOD for entry in plan)
    if isinstance(field, serializers.BaseSerializer) or not isinstance(field, CONTEXT_FREE_FIELDS):
        return False
    if isinstance(field, drf_fields.ListField | drf_fields.DictField) and not _context_free(field.child):
        return False
    # A subclass of ours may render differently (and read the context): DRF's own methods only.
    return all(getattr(type(field), name).__module__ == drf_fields.__name__ for name in _RENDERING)
