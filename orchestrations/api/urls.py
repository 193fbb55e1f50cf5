from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from orchestrations.api.approval_views import ApprovalViewSet
from orchestrations.api.views import OrchestrationViewSet, PatternListView
from studio.ids import id_pattern

router = SimpleRouter(trailing_slash=False)
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")

router.register("approvals", ApprovalViewSet, basename="approval")
# POST /api/approvals/{id}: the decision (the router maps POST only to the list).
approval_detail = ApprovalViewSet.as_view({"get": "retrieve", "post": "decide"})

urlpatterns = [
    path("patterns", PatternListView.as_view(), name="patterns"),
    re_path(rf"^approvals/(?P<pk>{id_pattern('appr')})$", approval_detail, name="approval-detail"),
    *router.urls,
]
