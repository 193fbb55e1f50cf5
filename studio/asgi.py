"""ASGI entry point: HTTP through Django, WebSocket through the Channels router (daphne serves it)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from studio.handler import StudioASGIHandler  # noqa: E402

django_asgi_app = StudioASGIHandler()

from django.db import connections  # noqa: E402

from studio.sqlite import keep_wal_open  # noqa: E402

keep_wal_open(connections["default"].settings_dict)

from deployments.mcp_server import with_mcp  # noqa: E402
from deployments.webhook_delivery import webhook_sweeping_start  # noqa: E402
from observability.rollup import usage_rollup_start  # noqa: E402
from orchestrations.approvals import approvals_sweeping_start  # noqa: E402
from providers.aio import mark_server_loop  # noqa: E402
from providers.reaping import reaping_start  # noqa: E402
from studio.bodies import bounded_bodies  # noqa: E402
from studio.routing import websocket_urlpatterns  # noqa: E402
from studio.websocket import JWTAuthMiddleware, OriginCheck  # noqa: E402


def _server_started() -> None:
    """Once the server's loop runs: tells the engine which loop is the server's (see providers.aio)
    and starts the process's periodic work on it (the reaper, the usage rollup, overdue approvals,
    the webhook deliveries' sweeper)."""
    mark_server_loop()
    reaping_start()
    usage_rollup_start()
    approvals_sweeping_start()
    webhook_sweeping_start()


def serving(app):
    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            _server_started()
            return await _lifespan(receive, send)
        mark_server_loop()
        return await app(scope, receive, send)

    return asgi


async def _lifespan(receive, send) -> None:
    """ASGI lifespan (uvicorn, granian): the periodic work is started before any request."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = serving(
    ProtocolTypeRouter(
        {
            # The admin's and the API docs' static files are served by the app itself.
            # /mcp/{name} (deployments' MCP endpoints) is served in front of Django.
            "http": bounded_bodies(with_mcp(ASGIStaticFilesHandler(django_asgi_app))),
            "websocket": OriginCheck(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)

# daphne speaks no lifespan: start the periodic work on its loop as soon as it runs, so that a
# process nobody has called yet reaps too.
if (daphne_server := sys.modules.get("daphne.server")) is not None:
    daphne_server.twisted_loop.call_soon(_server_started)
