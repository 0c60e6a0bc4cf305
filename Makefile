# The two front-door commands (README): `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install dev quickstart test lint format unit cluster-up cluster-down bench

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
# integration tests against a real control plane (built from Go modules on first use).
test: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: dev
	$(BIN)/python -m pytest tests/unit

cluster-up:
	scripts/cluster up

cluster-down:
	scripts/cluster down
