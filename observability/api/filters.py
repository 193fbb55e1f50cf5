import datetime as dt
import re

import django_filters
from django import forms

from observability.models import AuditLog, Run


class AuditLogFilterSet(django_filters.FilterSet):
    model_name = django_filters.CharFilter()
    operation_type = django_filters.CharFilter()
    user_id = django_filters.CharFilter(field_name="user_id")

    class Meta:
        model = AuditLog
        fields = ["model_name", "operation_type", "user_id"]


_SPACED_OFFSET = re.compile(r"(?<=\d) (\d{2}(?::?\d{2})?)$")


class IsoMomentField(forms.Field):
    """An ISO 8601 date (`2026-11-27`) or date-time (`2026-11-27T10:00:00Z`; naive means UTC).
    A bare date is that day's first instant, or with `end_of_day` its last one, so that
    `end_date=2026-11-27` includes the whole day."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        try:
            if "T" not in text and " " not in text:
                day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
                return day + dt.timedelta(days=1, microseconds=-1) if self.end_of_day else day
            # An unencoded "+01:00" arrives as " 01:00": read it as the offset it was meant to be.
            moment = dt.datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text))
        except ValueError:
            raise forms.ValidationError(
                f"'{text}' is not an ISO 8601 date or date-time (e.g. 2026-11-27 or 2026-11-27T10:00:00Z).",
                code="invalid",
            ) from None
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class IsoMomentFilter(django_filters.Filter):
    field_class = IsoMomentField


class TraceFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start and end and start > end:
            self.add_error("start_date", "start_date must not be after end_date.")
        return cleaned


class TraceFilterSet(django_filters.FilterSet):
    agent_id = django_filters.CharFilter()
    orchestration_id = django_filters.CharFilter()
    deployment_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Run.Status.choices)
    kind = django_filters.ChoiceFilter(choices=Run.Kind.choices)
    start_date = IsoMomentFilter(field_name="created_at", lookup_expr="gte")
    end_date = IsoMomentFilter(field_name="created_at", lookup_expr="lte", end_of_day=True)

    class Meta:
        model = Run
        form = TraceFilterForm
        fields = ["agent_id", "orchestration_id", "deployment_id", "status", "kind"]
