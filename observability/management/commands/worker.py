"""`manage.py worker [--concurrency N]`: one process of the worker pool (STUDIO_EXECUTION=queue).

It executes up to N runs at once on one event loop, plus the pool's periodic work (reaping,
stalled-job retry, pruning: `observability.tasks`, `providers.tasks`). Start any number of them,
on any machine that reaches the PostgreSQL database. SIGTERM or SIGINT stop it gracefully: no new
jobs, the runs in progress get `STUDIO_WORKER_DRAIN_S` seconds to finish, and those still going
are handed back to the queue, where another worker resumes them; none is left `running`."""

from __future__ import annotations

import asyncio
import os
import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

# Connections beyond one per run: periodic tasks, heartbeats and ledger writes between runs.
SPARE_CONNECTIONS = 5


def _pool_at_least(size: int) -> None:
    """Each run holds a database connection while it executes (studio.background): the worker's
    pool must have one per run it executes at once, whatever STUDIO_DB_POOL_SIZE says for web
    processes. A pool made already (start-up code that queried) is closed, to be made anew."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict) and pool.get("max_size", 0) < size:
        pool["max_size"] = size
        connections["default"].close_pool()


class Command(BaseCommand):
    help = "Execute queued runs (STUDIO_EXECUTION=queue) and the pool's periodic tasks."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.WORKER_CONCURRENCY,
            help="runs executed at once (default: STUDIO_WORKER_CONCURRENCY, 50)",
        )
        parser.add_argument(
            "--queues", default="", help="comma-separated queues to take jobs from (default: all)"
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WORKER_METRICS_PORT,
            help="serve Prometheus /metrics on this port (STUDIO_WORKER_METRICS_PORT; 0: off)",
        )

    def handle(self, *args, concurrency, queues, metrics_port, **options):
        if settings.EXECUTION != "queue":
            raise CommandError(
                "The worker executes queued runs: set STUDIO_EXECUTION=queue (with PostgreSQL) "
                "in the web processes and here."
            )
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.WORKER_METRICS_HOST)
        queue_names = [name.strip() for name in queues.split(",") if name.strip()] or None
        _pool_at_least(concurrency + SPARE_CONNECTIONS)
        asyncio.run(self._work(concurrency, queue_names))

    async def _work(self, concurrency: int, queues: list[str] | None) -> None:
        from procrastinate.contrib.django import app

        # The worker fetches jobs and listens for new ones (LISTEN/NOTIFY) through psycopg
        # connections of its own; deferring a job, even from inside a run here, still goes through
        # Django's connection (the app's Django connector), so it joins the caller's transaction.
        worker_app = app.with_connector(app.connector.get_worker_connector())
        async with worker_app.open_async():
            self.stdout.write(
                f"Worker {os.getpid()}: {concurrency} runs at once, draining "
                f"{settings.WORKER_DRAIN_S:g} s on SIGTERM."
            )
            await worker_app.run_worker_async(
                name=f"{socket.gethostname()}-{os.getpid()}",
                queues=queues,
                concurrency=concurrency,
                shutdown_graceful_timeout=settings.WORKER_DRAIN_S,
                update_heartbeat_interval=settings.WORKER_HEARTBEAT_S,
                stalled_worker_timeout=settings.WORKER_STALLED_S,
                install_signal_handlers=True,
                listen_notify=True,
                delete_jobs="successful",  # the ledger keeps the runs; the job table stays small
            )
