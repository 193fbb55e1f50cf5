"""STUDIO_EXECUTION: `inline` (the default) needs nothing more; `queue` needs PostgreSQL, and the
worker exists for it only. Checked on every database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command


def test_the_embedded_default_executes_runs_in_process(settings):
    assert settings.EXECUTION == "inline" or os.environ.get("STUDIO_EXECUTION") == "queue"


@pytest.mark.django_db
def test_the_worker_refuses_to_start_without_the_queue(settings):
    settings.EXECUTION = "inline"
    with pytest.raises(CommandError, match="STUDIO_EXECUTION=queue"):
        call_command("worker")


def test_the_queue_refuses_to_start_on_sqlite():
    env = {**os.environ, "STUDIO_EXECUTION": "queue", "DATABASE_URL": "sqlite:///var/never.sqlite3"}
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode != 0
    assert "STUDIO_EXECUTION=queue needs PostgreSQL" in checked.stderr
