"""The worker pool's reaping (STUDIO_EXECUTION=queue): failing runs whose process died, as a
Procrastinate periodic task every `STUDIO_REAP_EVERY_S`, one execution per period across all
workers, instead of a loop in every web process (see `providers.reaping`)."""

from django.conf import settings
from procrastinate.contrib.django import app

from observability.tasks import MAINTENANCE_QUEUE, cron_every
from providers.reaping import runs_reap_logged


@app.periodic(cron=cron_every(settings.REAP_EVERY_S or 10), periodic_id="reap_runs")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="reap_runs")
async def reap_runs(timestamp: int) -> int:
    if settings.REAP_EVERY_S <= 0:
        return 0
    return await runs_reap_logged()
