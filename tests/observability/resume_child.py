"""Executes a stored run in a process of its own, for tests/observability/test_resume.py to kill
mid-run: `python -m tests.observability.resume_child RUN_ID execute|resume` (environment: see
`resume_child`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def resume_child(run_id: str, *, mode: str = "execute") -> subprocess.Popen:
    """The child process executing (`run_execute`) or resuming (`run_resume`) the run, on the test
    database, with this process's bound of attempts."""
    from django.conf import settings

    from tests.conftest import LIVE_CACHE_PREFIX
    from tests.live import _database_url

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "STUDIO_TEST_CACHE_PREFIX": LIVE_CACHE_PREFIX,
        "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
        "STUDIO_REAP_EVERY_S": "0",
        "STUDIO_RUN_MAX_ATTEMPTS": str(settings.RUN_MAX_ATTEMPTS),
    }
    command = [sys.executable, "-m", "tests.observability.resume_child", run_id, mode]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_work(run):
    """The run's work, rebuilt from its row as a worker would (agent test or orchestration)."""
    from agents.models import Agent
    from agents.runs import agent_spec, agent_work
    from orchestrations.models import Orchestration
    from orchestrations.runs import orchestration_spec, orchestration_work

    if run.orchestration_id:
        spec = orchestration_spec(Orchestration.objects.get(pk=run.orchestration_id))
        return orchestration_work(spec, run.input), spec.name
    spec = agent_spec(Agent.objects.get(pk=run.agent_id))
    return agent_work(spec, run.input), spec.name


def main(run_id: str, mode: str) -> None:
    import django

    django.setup()
    from observability.models import Run
    from observability.replay import run_resume
    from observability.supervisor import run_execute

    run = Run.objects.get(pk=run_id)
    work, name = run_work(run)
    execute = run_execute if mode == "execute" else run_resume
    asyncio.run(execute(run, work, name=name))


if __name__ == "__main__":
    main(*sys.argv[1:])
