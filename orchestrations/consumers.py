from asgiref.sync import sync_to_async

from observability.consumers import ExecutionConsumer
from observability.limits import run_admit
from observability.services import launch_run
from orchestrations.execution import (
    orchestration_inputs_check,
    orchestration_run_new,
    orchestration_specs,
    orchestration_work,
)
from orchestrations.models import Orchestration


def _prepare(orchestration_id: str, organization_id: str, user, inputs):
    orchestration = Orchestration.objects.get(pk=orchestration_id, organization_id=organization_id)
    specs = orchestration_specs(orchestration)
    inputs = orchestration_inputs_check(orchestration.pattern, specs, orchestration.config, inputs)
    run = run_admit(orchestration_run_new(orchestration=orchestration, user=user, inputs=inputs))
    work = orchestration_work(orchestration.pattern, specs, orchestration.config, inputs, stream=True)
    return run, work, orchestration.name


class OrchestrationStreamConsumer(ExecutionConsumer):
    """`/api/orchestrations/{orchestration_id}/stream`: run it and watch every agent and step live."""

    async def authorize(self) -> bool:
        self.orchestration_id = self.scope["url_route"]["kwargs"]["orchestration_id"]
        return await Orchestration.objects.filter(
            pk=self.orchestration_id, organization_id=self.user.organization_id
        ).aexists()

    async def start_run(self, inputs):
        run, work, name = await sync_to_async(_prepare)(
            self.orchestration_id, self.user.organization_id, self.user, inputs
        )
        await self.follow(run.pk, replay=False)
        launch_run(run, work, name=name)
        return run
