# The README's commands. Each target installs what it needs first, so any of them works on a
# fresh clone: `make run` shows the pipeline working, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster

.PHONY: setup db db-stop db-status run test lint ui bench stress clean screenshots

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

# The README's pictures of the Dagster UI, taken with headless Chromium; never part of `test`.
screenshots: db
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
		else \
			echo "make screenshots needs Debian's chromium: sudo apt-get install chromium chromium-driver"; \
			exit 1; \
		fi; \
	fi
	$(BIN)/python -m pip install --quiet -e '.[dev,screenshots]'
	$(BIN)/python docs/screenshots.py

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
