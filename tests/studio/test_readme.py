"""The README's walk-through works when followed literally: every shell variable it uses is set
earlier in it, and its curl blocks, run as written against a live server, all succeed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ASSIGNED = re.compile(r"(?:^|[\s;(])([A-Z_][A-Z0-9_]*)=")
USED = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")
# Each call fails the walk-through on an HTTP error (its body still printed); the calls themselves
# run exactly as the README writes them.
STRICT_CURL = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; echo; }\n'


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)


def walk_through() -> str:
    """The blocks that talk to the server, in the README's order."""
    return "\n".join(block for block in shell_blocks() if "curl" in block)


def test_every_variable_the_walk_through_uses_is_set_before():
    assigned: set[str] = set()
    for number, line in enumerate(walk_through().splitlines(), 1):
        code = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
        used = set(USED.findall(code)) - assigned
        assert not used, f"line {number} uses {sorted(used)} before setting it: {line}"
        assigned |= set(ASSIGNED.findall(code))


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_walk_through_runs_as_written_against_a_live_server(daphne_server):
    script = walk_through().replace("localhost:8000", daphne_server.url.removeprefix("http://"))
    done = subprocess.run(
        ["bash", "-c", STRICT_CURL + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    executed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"outputs"')]
    assert executed and executed[0]["outputs"]["priority"] in ("low", "high")  # the deployment answered
    assert json.loads(done.stdout[done.stdout.rindex("\n{") :])["priority"] in (
        "low",
        "high",
    )  # so did the CLI
