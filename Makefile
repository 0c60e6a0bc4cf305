# The two front-door commands (README): `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install dev quickstart test lint format unit cluster-build cluster-up cluster-down bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

# Installs trainbed and runs a real example campaign (2-rank DDP on digits) on this machine.
quickstart: install
	$(BIN)/trainbed run experiments/quickstart.yaml --out results --resume

# Installs everything and runs every test: lint, unit, real torch.distributed, and the
# integration tests against a real control plane. The control plane is built from Go modules
# first, as its own step with progress (minutes when the cache is cold, nothing when warm), so
# no per-test timeout ever covers a build. TRAINBED_SKIP_CLUSTER=1 skips it and those tests.
test: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ "$$TRAINBED_SKIP_CLUSTER" = 1 ]; then echo "TRAINBED_SKIP_CLUSTER=1: not building the control plane"; \
	else PYTHON=$(BIN)/python scripts/cluster build; fi
	scripts/ensure-test-packages
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: dev
	$(BIN)/python -m pytest tests/unit

cluster-build:
	scripts/cluster build

cluster-up:
	scripts/cluster up

cluster-down:
	scripts/cluster down
