#!/usr/bin/env bash
# Offline checks of deploy/ (make deploy-check, run by .ci/run):
#  1. every Kubernetes manifest against the API schema of a pinned Kubernetes version
#     (kubernetes-validate --strict: unknown or misplaced fields fail);
#  2. checkov's policy checks on the manifests and the Dockerfile, with the skips listed below;
#  3. the systemd units (systemd-analyze verify, where systemd is installed);
#  4. deploy/test_topology.py: settings names, commands, drain bounds, and the pods' commands run
#     for real on the suite's PostgreSQL (probes, scrapes, SIGTERM within the grace period).
# The tools live in their own venv, deploy/.venv, created here when missing (PyPI only).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=1.32.0
VENV=deploy/.venv
PINS=(kubernetes-validate==1.37.0 checkov==3.3.30)
STAMP="$VENV/.installed-$(echo "${PINS[*]}" | tr ' =' '_-')"

# Checks skipped everywhere, each for a reason; the skips that concern one resource are
# annotations on that resource (worker-deployment.yaml).
CHECKOV_SKIPS=(
  CKV_K8S_43    # "image should use a digest": kustomization.yaml names a tag; pin a digest there at release
  CKV_K8S_35    # "secrets as files, not env": Django reads its secrets from the environment (studio/settings.py)
  CKV_DOCKER_2  # "HEALTHCHECK": one image serves web and worker; Kubernetes probes and systemd watch them
)

if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # The machine's pip config may list local indexes that are not there: keep out their warnings.
  "$VENV/bin/python" -m pip install --quiet "${PINS[@]}" 2> >(grep -v "is neither a file nor a directory" >&2)
  touch "$STAMP"
fi

mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
"$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "${manifests[@]}"
echo "kubernetes-validate: ${#manifests[@]} manifests valid against Kubernetes $KUBERNETES_VERSION (strict)"

"$VENV/bin/checkov" --quiet --compact --skip-download --framework kubernetes dockerfile \
  --directory deploy --skip-path .venv --skip-check "$(IFS=,; echo "${CHECKOV_SKIPS[*]}")"
echo "checkov: no failed check on deploy/kubernetes and deploy/Dockerfile (skipped: ${CHECKOV_SKIPS[*]})"

if command -v systemd-analyze >/dev/null; then
  # Verified as installed would be: paths and the service user of the VM swapped for this machine's.
  units=$(mktemp -d)
  trap 'rm -rf "$units"' EXIT
  cp deploy/vm/*.service deploy/vm/*.target "$units"
  sed -i -e "s#/srv/kaizen-studio/.venv/bin/python#$(command -v python3)#" -e 's#/srv/kaizen-studio#/tmp#g' \
    -e 's#^User=.*#User=root#' -e 's#^Group=.*#Group=root#' -e 's#^EnvironmentFile=#EnvironmentFile=-#' "$units"/*
  findings=$(cd "$units" && systemd-analyze verify --man=no ./*.service ./*.target 2>&1 || true)
  if [ -n "$findings" ]; then echo "$findings" >&2; exit 1; fi
  echo "systemd-analyze: deploy/vm units verified"
else
  echo "systemd-analyze: not installed, units not verified"
fi

.venv/bin/pytest -p no:cacheprovider -q -n 0 deploy/test_topology.py
