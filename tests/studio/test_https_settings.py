"""With an https public URL every request is redirected to https, except what reaches pods
directly over plain HTTP inside a cluster: the probes and the metrics scrape (deploy/kubernetes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.live import ROOT

PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="studio.example.com")
print(json.dumps({path: client.get(path).status_code for path in
                  ("/api/health/live", "/api/health", "/metrics", "/api/agents", "/admin/")}))
"""


def test_only_the_probes_and_the_metrics_scrape_answer_over_plain_http():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_PUBLIC_URL": "https://studio.example.com",
        "DATABASE_URL": f"sqlite:///{ROOT / 'var' / 'https-settings.sqlite3'}",
    }
    env.pop("REDIS_URL", None)
    answered = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert answered.returncode == 0, answered.stderr[-2000:]
    statuses = json.loads(answered.stdout.strip().splitlines()[-1])
    assert statuses["/api/health/live"] == 200
    assert statuses["/api/health"] != 301  # 200 or 503 (this database is not migrated): not redirected
    assert statuses["/metrics"] != 301
    assert statuses["/api/agents"] == 301
    assert statuses["/admin/"] == 301
