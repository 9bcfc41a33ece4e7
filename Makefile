# `make run` sets up and runs reroute locally; `make test` sets up and runs the whole suite.
# `make test-fast` runs the unit layer without the slow property tests (seconds, for the edit-test loop).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast test-faults lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/reroute up --demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not slow and not faults"

# The fault matrix under load (docs/reliability.md): minutes per scenario, so not part of `make test`.
# Broker and crash faults run on SQLite; database faults only with DATABASE_URL (PostgreSQL).
test-faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -s -m "faults and $(if $(DATABASE_URL),postgres,not postgres)"

lint: $(STAMP)  ## ruff and strict mypy (not part of `make test`: new releases of either add rules)
	$(BIN)/ruff check services shared apps bench tests
	$(BIN)/mypy services shared apps bench

.PHONY: docs
docs: $(STAMP)  ## the AsyncAPI documents in docs/, generated from shared/contracts
	$(BIN)/python -m shared.asyncapi

bench: $(STAMP)  ## whole-pipeline throughput; figures go into docs/performance.md
	$(BIN)/python -m bench.pipeline

clean:
	rm -rf $(VENV) .reroute
