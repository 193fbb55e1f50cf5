from django.urls import path
from rest_framework.routers import SimpleRouter

from orchestrations.api.views import OrchestrationViewSet, PatternListView

router = SimpleRouter(trailing_slash=False)
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")

urlpatterns = [path("patterns", PatternListView.as_view(), name="patterns"), *router.urls]
