"""How a worker rebuilds the work of a queued orchestration run (STUDIO_EXECUTION=queue): the
saved orchestration and its agents as they are now, on the run's stored inputs. See
`observability.queue`. And the pool's periodic check of overdue approvals."""

from procrastinate.contrib.django import app

from observability.models import Run
from observability.queue import run_rebuilder
from observability.tasks import MAINTENANCE_QUEUE
from orchestrations.approvals import approvals_expire
from orchestrations.models import Orchestration
from orchestrations.patterns.base import OrchestrationError
from orchestrations.runs import orchestration_spec, orchestration_work


@run_rebuilder(Run.Kind.ORCHESTRATION)
def orchestration_rebuild(run: Run, stream: bool):
    orchestration = Orchestration.objects.filter(
        pk=run.orchestration_id, organization_id=run.organization_id
    ).first()
    if orchestration is None:
        raise OrchestrationError(
            "orchestration_missing", "The orchestration of this run no longer exists.", status=409
        )
    return orchestration_work(orchestration_spec(orchestration), run.input, stream=stream)


@app.periodic(cron="* * * * *", periodic_id="expire_approvals")
@app.task(queue=MAINTENANCE_QUEUE, queueing_lock="expire_approvals")
async def expire_approvals(timestamp: int) -> int:
    """Expires overdue approvals once a minute across the pool, and resumes their runs."""
    return len(await approvals_expire())
