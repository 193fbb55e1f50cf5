"""ASGI entry point: HTTP through Django, WebSocket through the Channels router (daphne serves it)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.db import connections  # noqa: E402

from studio.sqlite import keep_wal_open  # noqa: E402

keep_wal_open(connections["default"].settings_dict)

from deployments.mcp_server import with_mcp  # noqa: E402
from providers.aio import mark_server_loop  # noqa: E402
from studio.routing import websocket_urlpatterns  # noqa: E402
from studio.websocket import JWTAuthMiddleware, OriginCheck  # noqa: E402


def marking_server_loop(app):
    """Tells the engine which event loop is the server's (see providers.aio)."""

    async def asgi(scope, receive, send):
        mark_server_loop()
        return await app(scope, receive, send)

    return asgi


application = marking_server_loop(
    ProtocolTypeRouter(
        {
            # The admin's and the API docs' static files are served by the app itself.
            # /mcp/{name} (deployments' MCP endpoints) is served in front of Django.
            "http": with_mcp(ASGIStaticFilesHandler(django_asgi_app)),
            "websocket": OriginCheck(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)
