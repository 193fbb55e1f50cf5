from rest_framework.routers import SimpleRouter

from templates.api.views import AgentTemplateViewSet, OrchestrationTemplateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("templates/agents", AgentTemplateViewSet, basename="agent-template")
router.register("templates/orchestrations", OrchestrationTemplateViewSet, basename="orchestration-template")
urlpatterns = router.urls
