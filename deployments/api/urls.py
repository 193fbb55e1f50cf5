from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api.views import DeploymentViewSet, DeployView
from deployments.api.webhook_views import WebhookViewSet

router = SimpleRouter(trailing_slash=False)
router.register("deployments", DeploymentViewSet, basename="deployment")
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = [path("deploy", DeployView.as_view(), name="deploy"), *router.urls]
