from rest_framework.routers import SimpleRouter

from providers.api.views import ProviderConfigViewSet

router = SimpleRouter(trailing_slash=False)
router.register("providers", ProviderConfigViewSet, basename="provider")
urlpatterns = router.urls
