# The README's two commands and the others of docs/development.md. Each target installs what it
# needs first, so any of them works on a fresh clone: `make run` shows the pipeline working,
# `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster

.PHONY: setup db db-stop db-status run test test-mysql test-integration docker-engine lint docs ui check-defs bench stress clean screenshots

# pip's and npm's own output goes to a log, shown only when an install fails: a fresh clone sees
# one line per step, not pages of warnings about the machine's package indexes.
PIP_LOG := .local/install-python.log
NPM_LOG := .local/install-npm.log
INSTALL_FAILED = { tail -n 40 $(1); echo "error: the install failed; its whole log is $(1)"; exit 1; }

$(STAMP): pyproject.toml
	@mkdir -p .local
	@echo "installing the Python packages into $(VENV) (2-4 minutes on a fresh clone; log in $(PIP_LOG))"
	@{ $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --upgrade pip \
		&& $(BIN)/python -m pip install -e '.[dev]'; } > $(PIP_LOG) 2>&1 || $(call INSTALL_FAILED,$(PIP_LOG))
	@touch $(STAMP)

setup: $(STAMP)

# asl-validator (npm), which the tests run over the state machine in deploy/aws/.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	@mkdir -p .local
	@echo "installing asl-validator with npm into node_modules (log in $(NPM_LOG))"
	@npm ci --no-audit --no-fund --loglevel=error > $(NPM_LOG) 2>&1 || $(call INSTALL_FAILED,$(NPM_LOG))
	@touch $(NODE_STAMP)

db: setup
	$(BIN)/idminter db server start

db-stop: setup
	$(BIN)/idminter db server stop

db-status: setup
	$(BIN)/idminter db server status

# The local pool's levels for `make run` and `make ui` (docs/development.md, "The local pool"):
# the sample mints about 9,500 IDs in a minute, which production's levels (a million, watermarks
# for a day of real minting) would read as an emergency. Set in the environment, they win.
run ui: export IDMINTER_POOL_TARGET_FREE ?= 100000
run ui: export IDMINTER_POOL_LOW_WATERMARK ?= 20000
run ui: export IDMINTER_POOL_CRITICAL_WATERMARK ?= 5000
run ui: export IDMINTER_POOL_FORECAST_HORIZON_HOURS ?= 1

# local-run starts the server itself and prints its banner.
run: setup
	@$(BIN)/idminter local-run

# The suite in parallel workers (pytest-xdist), each with databases of its own
# (tests/conftest.py); modules whose tests share a private server stay on one worker.
# TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 4
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test: db $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The whole suite against a project-local MySQL 9.x from Debian's archive, unpacked under .local/
# beside the MariaDB (docs/development.md, "Test servers"); its own port (this checkout's, or
# MYSQL_PORT=), stopped and its data removed afterwards. When the archive cannot be reached it
# says so in one line and exits 0. Tests that reach no database server (tests/conftest.py marks
# them, and makes one that does reach a server fail) are left to `make test`.
test-mysql: setup $(NODE_STAMP)
	$(BIN)/python -m tools.test_mysql $(if $(MYSQL_PORT),--port $(MYSQL_PORT)) $(PYTEST_PARALLEL) \
		-m "not database_free"

# The whole suite against MySQL 8.0 and Elasticsearch 8 from compose.yaml (docs/development.md,
# "Running the tests"). The stack is torn down afterwards, pass or fail.
INTEGRATION_ENV := RDS_PRIMARY_HOST=127.0.0.1 RDS_PORT=3306 RDS_USERNAME=id_minter \
	RDS_PASSWORD=id_minter ELASTICSEARCH_URL=http://127.0.0.1:9200
test-integration: docker-engine setup $(NODE_STAMP)
	docker compose -f compose.yaml up -d --wait
	status=0; $(INTEGRATION_ENV) $(BIN)/pytest $(PYTEST_PARALLEL) || status=$$?; \
		docker compose -f compose.yaml down -v; exit $$status

docker-engine:
	$(if $(shell docker info >/dev/null 2>&1 && echo up),,$(error make test-integration needs a Docker engine and none answers here (docker info failed); `make test` runs the suite on the local MariaDB))

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# docs/cli.md from every command's --help (tests/test_docs_cli.py fails when it is stale).
docs: setup
	$(BIN)/python -m tools.cli_docs

LOCAL_INSTANCE := deploy/local/dagster.yaml
$(DAGSTER_HOME)/dagster.yaml: $(LOCAL_INSTANCE)
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/$(LOCAL_INSTANCE) $(DAGSTER_HOME)/dagster.yaml

# Dagster's `dg` CLI over this project ([tool.dg] in pyproject.toml), in this virtualenv.
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg
# Colour codes only on a terminal: piped into a file or a CI log, the lines are plain text.
PLAIN := sed -u 's/\x1b\[[0-9;]*m//g'

# The Dagster UI and daemon on the local instance (http://127.0.0.1:3000).
ui: db $(DAGSTER_HOME)/dagster.yaml
	@if [ -t 1 ]; then $(DG) dev --use-active-venv; \
	else $(DG) dev --use-active-venv 2>&1 | $(PLAIN); fi

# Dagster's own check that the code location loads: every definition, resource and schedule.
check-defs: setup $(DAGSTER_HOME)/dagster.yaml
	@status=0; out=$$($(DG) check defs --use-active-venv 2>&1) || status=$$?; \
	printf '%s\n' "$$out" | $(PLAIN); exit $$status

# The pictures of the Dagster UI (docs/operations/dagster.md), taken with headless Chromium; never
# part of `test`.
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
	rm -rf .local $(VENV) node_modules

# Benchmarks and the long reliability runs (docs/benchmarks.md); never in `test`.
.PHONY: bench-quick
bench: db
	$(BIN)/python -m benchmarks.run

bench-quick: db
	$(BIN)/python -m benchmarks.run --quick

stress: db
	$(BIN)/python -m benchmarks.stress

# Sampled mutation testing of the registry and works modules (docs/development.md); an hour
# or more, never in `test`. MUTATION_ARGS="--sample 200 --seed 7" or "--group minting", say.
.PHONY: mutation
mutation: db
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	$(BIN)/python -m tools.mutation $(MUTATION_ARGS)
