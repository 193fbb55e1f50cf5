"""The production topology of deploy/ agrees with itself and with the app: every setting it sets is
one the app reads, every command it runs parses, the grace periods cover the drain bounds, and the
web pod's probes pass on a real `manage.py serve` configured like the pod (run by deploy/check.sh)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
VM = ROOT / "deploy" / "vm"
APPS = (
    "studio",
    "accounts",
    "observability",
    "providers",
    "agents",
    "orchestrations",
    "deployments",
    "templates",
)
POD_IP = "10.1.2.3"  # what the downward API would give the pod
MARGIN_S = 5  # the least a grace period may leave beyond the bound it covers


def _resources() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(KUBE.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


RESOURCES = _resources()
CONFIG = RESOURCES[("ConfigMap", "studio-config")]["data"]
SECRET = RESOURCES[("Secret", "studio-secrets")]["stringData"]
WEB = RESOURCES[("Deployment", "studio-web")]
WORKER = RESOURCES[("Deployment", "studio-worker")]
MIGRATE = RESOURCES[("Job", "studio-migrate")]
WORKLOADS = (WEB, WORKER, MIGRATE)


def _pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _containers(workload: dict) -> list[dict]:
    pod = _pod(workload)
    return pod.get("initContainers", []) + pod["containers"]


def _main(workload: dict) -> dict:
    return _pod(workload)["containers"][0]


def _units() -> dict[str, dict[str, str]]:
    """Each systemd unit's [Service] keys (the last value of a repeated key)."""
    units = {}
    for path in VM.glob("*.service"):
        keys, section = {}, None
        for line in path.read_text().splitlines():
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "Service" and "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                keys[key] = value
        units[path.name] = keys
    return units


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return dict(pairs)


def _procfile() -> dict[str, str]:
    lines = (VM / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def _manage_commands() -> list[list[str]]:
    """Every `manage.py …` command line the topology runs, as arguments after manage.py."""
    lines = []
    for workload in WORKLOADS:
        for container in _containers(workload):
            command = container["command"]
            if command[0] == "sh":  # the init containers' wait loop
                lines += [re.search(r"manage\.py ([^;>]+)", command[-1]).group(1).split()]
            else:
                lines.append(command[command.index("manage.py") + 1 :])
    for unit in _units().values():
        exec_start = shlex.split(unit["ExecStart"].replace("%i", "9101"))  # an instance's name
        lines.append(exec_start[exec_start.index("manage.py") + 1 :])
    for command in _procfile().values():
        args = shlex.split(command.replace("${PORT:-8000}", "8000"))
        lines.append(args[args.index("manage.py") + 1 :])
    return lines


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _app_sources() -> str:
    return "\n".join(
        path.read_text()
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_every_setting_the_topology_sets_is_one_the_app_reads():
    pod_only = {"POD_IP"}  # only there to be expanded into STUDIO_ALLOWED_HOSTS
    named = set(CONFIG) | set(SECRET) | set(_env_file(VM / "studio.env.example"))
    named |= {
        entry["name"] for workload in WORKLOADS for c in _containers(workload) for entry in c.get("env", [])
    }
    sources = _app_sources()
    unread = sorted(name for name in named - pod_only if f'"{name}"' not in sources)
    assert unread == []


def test_the_secrets_are_placeholders_in_the_secret_and_never_in_the_config_map():
    required = {
        "DATABASE_URL",
        "REDIS_URL",
        "STUDIO_SECRET_KEY",
        "STUDIO_FERNET_KEYS",
        "STUDIO_METRICS_TOKEN",
    }
    assert required <= set(SECRET)
    assert not required & set(CONFIG)
    assert all(value.startswith("REPLACE_WITH") for value in SECRET.values())
    assert required <= set(_env_file(VM / "studio.env.example"))


def test_every_pod_reads_the_config_map_and_the_secret():
    sources = [{"configMapRef": {"name": "studio-config"}}, {"secretRef": {"name": "studio-secrets"}}]
    for workload in WORKLOADS:
        for container in _containers(workload):
            assert container["envFrom"] == sources, container["name"]


def test_the_kustomization_applies_every_manifest_but_the_secret_and_the_adapter_rules():
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    manifests = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    (image,) = kustomization["images"]
    images = {c["image"].split(":")[0] for workload in WORKLOADS for c in _containers(workload)}
    assert images == {image["name"]}


def test_every_command_the_topology_runs_exists_and_parses():
    commands = get_commands()
    lines = _manage_commands()
    assert {line[0] for line in lines} >= {"serve", "worker", "startup", "migrate"}
    for name, *args in lines:
        assert name in commands, name
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        try:
            parser.parse_args(args)
        except SystemExit as refusal:  # argparse's way of refusing
            pytest.fail(f"manage.py {name} {' '.join(args)}: refused ({refusal})")


def test_the_web_grace_period_covers_the_pre_stop_pause_and_the_graceful_timeout():
    container = _main(WEB)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(_option(container["command"], "--graceful-timeout"))
    assert _pod(WEB)["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + MARGIN_S
    unit = _units()["kaizen-studio-web.service"]
    assert (
        int(unit["TimeoutStopSec"])
        >= float(_option(shlex.split(unit["ExecStart"]), "--graceful-timeout")) + MARGIN_S
    )
    assert unit["KillMode"] == "mixed"  # SIGTERM to the server alone, which stops its processes


def test_the_worker_grace_period_covers_the_drain_bound():
    assert _pod(WORKER)["terminationGracePeriodSeconds"] >= float(CONFIG["STUDIO_WORKER_DRAIN_S"]) + MARGIN_S
    unit = _units()["kaizen-studio-worker@.service"]
    drain = float(_env_file(VM / "studio.env.example")["STUDIO_WORKER_DRAIN_S"])
    assert int(unit["TimeoutStopSec"]) >= drain + MARGIN_S
    assert unit["KillMode"] == "mixed"


def _hpa_external_metrics() -> set[str]:
    hpa = RESOURCES[("HorizontalPodAutoscaler", "studio-worker")]
    return {m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "External"}


def test_the_autoscaling_metrics_are_ones_the_app_exports_and_the_adapter_serves():
    names = _hpa_external_metrics()
    rules = yaml.safe_load(RESOURCES[("ConfigMap", "prometheus-adapter")]["data"]["config.yaml"])
    served = {rule["name"]["as"] for rule in rules["externalRules"]}
    assert names and names <= served
    sources = _app_sources()
    assert all(f'"{name}"' in sources for name in names)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def database_url():
    """A fresh PostgreSQL database on the suite's server (the pods' STUDIO_EXECUTION=queue needs
    PostgreSQL), dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the pods' configuration (STUDIO_EXECUTION=queue) needs DATABASE_URL=postgres://...")
    import psycopg

    name = f"deploy_topology_{os.getpid()}"
    server = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlsplit(url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pod_environment(workload: dict, database_url: str) -> dict[str, str]:
    """A container's environment as the kubelet builds it: the ConfigMap, a Secret (test values
    and the suite's Redis), then the container's `env`, expanding its $(VAR) references."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(CONFIG)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = os.environ.get("REDIS_URL", "")
    env["STUDIO_SECRET_KEY"] = "a-test-secret-key-" + "x" * 40
    env["STUDIO_FERNET_KEYS"] = Fernet.generate_key().decode()
    env["STUDIO_METRICS_TOKEN"] = "a-test-metrics-token"
    for entry in _main(workload).get("env", []):
        if "valueFrom" in entry:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            env[entry["name"]] = POD_IP
        else:
            env[entry["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], entry["value"])
    return env


def _command(workload: dict, **replace: str) -> list[str]:
    command = [sys.executable, *_main(workload)["command"][1:]]
    for option, value in replace.items():
        command[command.index(f"--{option}") + 1] = value
    return command


def _stop(process: subprocess.Popen, workload: dict) -> int:
    """SIGTERM, as the kubelet sends after preStop; the exit code, which must come in the grace
    period that is left (None past it: the kubelet would have killed the process)."""
    pre_stop = _main(workload).get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    left = _pod(workload)["terminationGracePeriodSeconds"] - (int(pre_stop[1]) if pre_stop else 0)
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=left)
    except subprocess.TimeoutExpired:
        return None


def _wait_until(process: subprocess.Popen, ready, bound_s: float) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        try:
            if ready():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"not ready within {bound_s} s")


def _workers_registered(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Its own process group: `manage.py serve` starts workers, which a failed test kills too.
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _killed(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()


@pytest.mark.live
def test_the_pods_commands_serve_probes_and_metrics_and_stop_within_their_grace(database_url):
    """The Job's command migrates a fresh database; the web pod's command then answers its probes
    and Prometheus's scrape (the HPA's metrics in it), the worker pod's its scrape; both stop on
    SIGTERM within their termination grace period."""
    job_env = _pod_environment(MIGRATE, database_url)
    migrate = subprocess.run(
        [sys.executable, *_main(MIGRATE)["command"][1:]],
        cwd=ROOT,
        env=job_env,
        capture_output=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-3000:]
    # The init containers' test, while the pods start (as they would once it passes).
    check = _start([sys.executable, "manage.py", "migrate", "--check"], job_env)

    web_port, worker_port = _free_port(), _free_port()
    web_env = {**_pod_environment(WEB, database_url), "STUDIO_WORKERS": "1"}  # 1 process: a 2-core CI
    worker_env = {**_pod_environment(WORKER, database_url), "STUDIO_WORKER_METRICS_HOST": "127.0.0.1"}
    worker_env["STUDIO_WORKER_METRICS_PORT"] = str(worker_port)
    web = _start(_command(WEB, host="127.0.0.1", port=str(web_port)), web_env)
    worker = _start(_command(WORKER), worker_env)
    container = _main(WEB)
    host = f"{POD_IP}:{container['ports'][0]['containerPort']}"  # the Host the kubelet sends

    def probe(kind: str) -> httpx.Response:
        spec = container[kind]["httpGet"]
        headers = {"Host": host, **{h["name"]: h["value"] for h in spec.get("httpHeaders", [])}}
        return httpx.get(f"http://127.0.0.1:{web_port}{spec['path']}", headers=headers, timeout=5)

    try:
        startup = container["startupProbe"]
        _wait_until(
            web,
            lambda: probe("startupProbe").status_code == 200,
            startup["failureThreshold"] * startup["periodSeconds"] * 2,
        )
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            response = probe(kind)
            assert response.status_code == 200, (kind, response.status_code, response.headers)
        assert probe("readinessProbe").json()["checks"]["database"] == "ok"

        # Prometheus, as prometheus-adapter/rules.yaml says: the token, over plain HTTP.
        scrape = httpx.get(
            f"http://127.0.0.1:{web_port}/metrics",
            headers={"Host": host, "Authorization": f"Bearer {web_env['STUDIO_METRICS_TOKEN']}"},
            timeout=10,
        )
        assert scrape.status_code == 200
        for name in _hpa_external_metrics():
            assert f'{name}{{queue="runs"}}' in scrape.text, name

        # Started once registered: Procrastinate then takes over SIGTERM (before, it just kills).
        _wait_until(worker, lambda: _workers_registered(database_url) > 0, 60)
        worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
        assert "studio_job_latency_seconds" in httpx.get(worker_metrics, timeout=5).text

        # uvicorn re-raises the SIGTERM it handled once its graceful stop is done.
        assert check.wait(timeout=120) == 0, check.stderr.read().decode()[-3000:]
        assert _stop(web, WEB) in (0, -signal.SIGTERM)
        assert "Finished server process" in web.stderr.read().decode()
        assert _stop(worker, WORKER) == 0
    finally:
        for process in (web, worker, check):
            _killed(process)
