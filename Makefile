# churnops: `make help` lists the targets. Every target installs what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.ONESHELL:

PROJECT_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# uv from PATH, else a project-local copy installed from PyPI on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(PROJECT_DIR)/.tools/bin/uv)
VENV := $(PROJECT_DIR)/.venv
PY := $(VENV)/bin/python
CHURNOPS := $(VENV)/bin/churnops
MANIFEST := $(PROJECT_DIR)/dbt_project/target/manifest.json
CONTRACT := $(PROJECT_DIR)/include/churnops/landing_contract.yml
DBT_SOURCES := $(shell find $(PROJECT_DIR)/dbt_project -path '*/target' -prune -o -path '*/logs' -prune -o -type f \( -name '*.sql' -o -name '*.yml' \) -print 2>/dev/null)
PYTEST_ARGS ?=

export PATH := $(VENV)/bin:$(PATH)
export DO_NOT_TRACK := true
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False

.PHONY: help setup contract run test lint unit up backfill bench clean services settings-docs serve

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; printf "churnops targets:\n"} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PROJECT_DIR)/.tools/bin/uv:
	@echo "uv not found: installing it into .tools/ from PyPI"
	python3 -m venv $(PROJECT_DIR)/.tools
	$(PROJECT_DIR)/.tools/bin/pip install --quiet uv

# --compile-bytecode: every package's .pyc is written once at install. Without it, a
# shell with PYTHONDONTWRITEBYTECODE set (seen on the CI machines) compiles mlflow,
# sklearn, airflow, ... from source in every process: about 5 s per Airflow task.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

# Cosmos renders the dbt task group from this manifest, so DAG parsing never runs dbt.
# dbt reads the landing contract through the files `churnops contract --write` writes.
$(MANIFEST): $(VENV)/.synced $(CONTRACT) $(DBT_SOURCES)
	$(CHURNOPS) contract --write
	cd $(PROJECT_DIR)/dbt_project && CHURNOPS_DUCKDB_PATH=$${CHURNOPS_DUCKDB_PATH:-unused-by-parse.duckdb} \
	  $(VENV)/bin/dbt parse --quiet --project-dir . --profiles-dir .

setup: $(VENV)/.synced $(MANIFEST) ## Install uv if missing, create .venv from the lockfile, parse dbt

contract: $(VENV)/.synced ## Write the landing contract (include/churnops/landing_contract.yml) into the dbt project
	$(CHURNOPS) contract --write

run: setup services ## The closed loop on the embedded default: history, champion, nightly Airflow runs, drift, retrain
	$(CHURNOPS) loop

rollout-demo: setup ## The phased rollout in the Airflow UI (state in .churnops-rollout-demo/): one night per phase until the 50% approval waits
	CHURNOPS_STATE_DIR=$${CHURNOPS_STATE_DIR:-$(CURDIR)/.churnops-rollout-demo} $(CHURNOPS) rollout-demo

# The browser tests (tests/browser) drive Debian's chromium: installed here when missing
# (as root, as on the CI machines). Playwright's own browser download is never used.
test: setup services lint ## Lint, then run the whole test suite (installs chromium if missing)
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

unit: setup ## Run only the fast unit tests
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

# .ONESHELL runs the recipe as one script: set -e makes each check's failure the target's.
# sqlfluff renders the models through dbt (.sqlfluff), which opens the profile's DuckDB: an
# in-memory one, so lint needs no warehouse and writes no file.
lint: setup ## ruff (with Airflow 3 AIR3 rules), mypy on include/, sqlfluff on the dbt SQL
	set -e
	$(VENV)/bin/ruff check include dags plugins tests bench
	$(VENV)/bin/ruff format --check include dags plugins tests bench
	$(VENV)/bin/mypy
	CHURNOPS_DUCKDB_PATH=:memory: $(VENV)/bin/sqlfluff lint dbt_project

settings-docs: setup ## Rewrite the README's settings tables and .env.example from the settings' declaration
	$(VENV)/bin/python -m churnops.settings.docs --write

services: ## Start local PostgreSQL and Redis if they are down (prod-profile tests)
	@scripts/ensure-services.sh

up: setup ## Start Airflow (standalone: scheduler, API server, UI) with the project's DAGs
	$(CHURNOPS) airflow standalone

serve: setup services ## The real-time scoring service on the champion (prints a development API key)
	$(CHURNOPS) serve $(if $(PORT),--port $(PORT)) $(if $(WORKERS),--workers $(WORKERS))

backfill: setup ## Backfill the nightly DAG: make backfill FROM=2025-03-01 TO=2025-03-07
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2; }
	$(CHURNOPS) backfill --from-date $(FROM) --to-date $(TO)

bench: setup ## Print the benchmark figures (simulation, ...); BENCH=simulate to pick one
	cd $(PROJECT_DIR) && $(PY) -m bench $(BENCH)

clean: ## Delete local state (.churnops/: data, warehouse, models, Airflow metadata)
	rm -rf $(PROJECT_DIR)/.churnops
