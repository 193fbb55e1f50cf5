# Kaizen Studio API. `make run` serves the API; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint bench install deploy-check

# Install only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# URLs handed to users (api_url, mcp_url) follow where `make run` listens unless set.
run: export STUDIO_PUBLIC_URL ?= http://$(HOST):$(PORT)
# A local, single-user server: local models (Ollama) and tool servers, and its own MCP endpoints,
# are reachable. Production leaves this off (README: configuration).
run: export STUDIO_ALLOW_PRIVATE_PROVIDER_URLS ?= 1
run: $(STAMP)
	$(BIN)/python manage.py startup
	$(BIN)/daphne -b $(HOST) -p $(PORT) studio.asgi:application

test: $(STAMP)
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Offline checks of the production topology in deploy/ (deploy/README.md): Kubernetes schemas,
# checkov policies, systemd units, and the pods' commands started for real on $$DATABASE_URL.
deploy-check: $(STAMP)
	bash deploy/check.sh

# Measurements, not tests (see benchmarks/README.md); usage_at_scale.py is run on its own.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.api_baseline
	$(BIN)/python -m benchmarks.llm_transport
	$(BIN)/python benchmarks/gateway_overhead.py
	$(BIN)/python benchmarks/agent_runtime.py
	$(BIN)/python benchmarks/orchestration_engine.py
	$(BIN)/python -m benchmarks.deployment_endpoint
	$(BIN)/python -m benchmarks.request_cost
