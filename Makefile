# The README's commands. Each target installs what it needs first, so any of them works on a
# fresh clone: `make run` shows the pipeline working, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster

.PHONY: setup db db-stop db-status run test lint ui bench stress clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

db: setup
	$(BIN)/idminter db server start

db-stop: setup
	$(BIN)/idminter db server stop

db-status: setup
	$(BIN)/idminter db server status

run: db
	$(BIN)/idminter local-run

test: db
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

ui: db $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

clean: db-stop
	rm -rf .local $(VENV)

# Benchmarks and the long reliability runs (README, "Benchmarks and reliability"); never in `test`.
.PHONY: bench-quick
bench: db
	$(BIN)/python -m benchmarks.run

bench-quick: db
	$(BIN)/python -m benchmarks.run --quick

stress: db
	$(BIN)/python -m benchmarks.stress

# Sampled mutation testing of the registry and works modules (README, "Mutation testing"); an hour
# or more, never in `test`. MUTATION_ARGS="--sample 200 --seed 7" or "--group minting", say.
.PHONY: mutation
mutation: db
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	$(BIN)/python -m tools.mutation $(MUTATION_ARGS)
