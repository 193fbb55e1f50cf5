"""`manage.py serve`: the production server. N uvicorn worker processes on one port, serving HTTP
and WebSockets (studio.asgi), after the start-up steps of `make run` (`manage.py startup`).

uvicorn rather than daphne: on the same requests it costs less CPU per request (httptools and
uvloop instead of Twisted, see benchmarks/README.md, "Request cost"), its workers share one
listening socket, and it speaks ASGI lifespan, on which each worker starts its periodic reaping
(studio/asgi.py). SIGTERM or SIGINT stop it gracefully: no new connections, requests in flight get
`--graceful-timeout` seconds to finish, then the workers exit."""

from __future__ import annotations

import os

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the API with N uvicorn worker processes on one port (production)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("STUDIO_WORKERS", str(os.cpu_count() or 1))),
            help="server processes (default: STUDIO_WORKERS, else one per CPU)",
        )
        parser.add_argument(
            "--graceful-timeout", type=float, default=30.0, help="seconds in-flight requests get on shutdown"
        )
        parser.add_argument(
            "--skip-startup", action="store_true", help="do not run `manage.py startup` first"
        )

    def handle(self, *args, host, port, workers, graceful_timeout, skip_startup, **options):
        if workers < 1:
            self.stderr.write("--workers must be at least 1.")
            raise SystemExit(2)
        if not skip_startup:
            call_command("startup", stdout=self.stdout, stderr=self.stderr)
        uvicorn.run(
            "studio.asgi:application",
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            lifespan="on",
            # The app bounds frames itself, with an error frame first (studio.websocket).
            ws_max_size=max(16 * 1024 * 1024, 2 * settings.MAX_REQUEST_BODY_BYTES),
            timeout_graceful_shutdown=graceful_timeout,
            # Behind the TLS proxy of the README: X-Forwarded-* are read by Django (and only from
            # STUDIO_TRUSTED_PROXIES, studio.audit.client_address), not rewritten by uvicorn.
            proxy_headers=False,
            server_header=False,
            access_log=False,
        )
