from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api.views import DeploymentViewSet, DeployView

router = SimpleRouter(trailing_slash=False)
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = [path("deploy", DeployView.as_view(), name="deploy"), *router.urls]
