from rest_framework.routers import SimpleRouter

from agents.api.tools import McpServerViewSet

router = SimpleRouter(trailing_slash=False)
router.register("mcp-servers", McpServerViewSet, basename="mcp-server")
urlpatterns = router.urls
