# federated-rl-multicloud — the two commands a newcomer types: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export PYTHONUNBUFFERED := 1

.PHONY: install system-deps demo test test-fast lint format bench clean

# torch comes first, from its CPU wheel: anything that pulls torch later must find it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# System packages the tests run for real (Prometheus), from apt.
system-deps:
	bash scripts/setup/system_deps.sh

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Fast suite first (< 15 min), then the slow one (learning, end-to-end processes).
test: lint system-deps
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m "slow" -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -x

bench: $(STAMP)
	$(BIN)/python -m scripts.bench env --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
