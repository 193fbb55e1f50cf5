"""ASGI entry point: HTTP through Django, WebSocket through the Channels router (daphne serves it)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from studio.routing import websocket_urlpatterns  # noqa: E402
from studio.websocket import JWTAuthMiddleware, OriginCheck  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The admin's and the API docs' static files are served by the app itself.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": OriginCheck(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
