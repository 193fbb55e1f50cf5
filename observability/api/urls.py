from rest_framework.routers import SimpleRouter

from observability.api.views import AuditLogViewSet

router = SimpleRouter(trailing_slash=False)
router.register("audit", AuditLogViewSet, basename="audit")
urlpatterns = router.urls
