"""GET /api/approvals, GET /api/approvals/{id}, POST /api/approvals/{id} {decision, comment}."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.response import Response

from orchestrations.approvals import DECISIONS, approval_decide
from orchestrations.models import Approval
from studio.api.parsing import validated
from studio.api.rendering import RenderedFields
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern


class ApprovalSerializer(RenderedFields, serializers.ModelSerializer):
    run_id = serializers.CharField(read_only=True)
    decided_by = serializers.CharField(source="decided_by_id", read_only=True, allow_null=True)

    class Meta:
        model = Approval
        fields = [
            "id",
            "run_id",
            "kind",
            "subject",
            "status",
            "on_timeout",
            "expires_at",
            "decided_by",
            "comment",
            "created_at",
            "decided_at",
        ]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=list(DECISIONS))
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ApprovalFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Approval.Status.choices)
    run_id = filters.CharFilter(field_name="run_id")

    class Meta:
        model = Approval
        fields = ["status", "run_id"]


class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Approvals of the caller's organization's runs: viewers read, members decide."""

    queryset = Approval.objects.all()
    serializer_class = ApprovalSerializer
    filterset_class = ApprovalFilterSet
    lookup_value_regex = id_pattern("appr")
    action_roles = {"decide": "member"}

    @extend_schema(request=DecisionSerializer, responses=ApprovalSerializer)
    def decide(self, request, pk=None):
        """Approves or rejects (409 `approval_decided` once decided or expired); the run goes on."""
        data = validated(DecisionSerializer, request.data)
        approval = approval_decide(user=request.user, approval=self.get_object(), **data)
        return Response(ApprovalSerializer(approval).data)
