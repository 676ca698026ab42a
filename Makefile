# VulHub. `make run` to try it, `make test` to check it. `make help` lists every target.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help install run migrate seed test lint format migrations-check pytest test-deps bench-deps bench bench-smoke db-stop clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## Create .venv and install the pinned dependencies

.env:
	cp .env.example .env

migrate: install .env ## Apply migrations and create the cache table (as the schema owner), set up the database roles
	$(PY) manage.py migrate --no-input
	$(PY) manage.py db_roles

seed: migrate ## Load the demo data (idempotent)
	$(PY) manage.py seed

run: seed ## Start VulHub on http://localhost:8000 (embedded database unless DATABASE_URL is set)
	$(PY) manage.py runserver localhost:8000

lint: install ## ruff lint and format check; the import contracts between layers (docs/architecture.md)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install ## Reformat the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: install .env ## Fail when a model change lacks its migration
	$(PY) manage.py makemigrations --check --dry-run

test-deps: ## Install Debian's chromium, pgbouncer, redis-server, postgresql-15 (pg_stat_statements), pgbackrest, prometheus (promtool) and its PostgreSQL and Redis exporters, haproxy for the tests (root or sudo, once)
	@{ command -v chromium && command -v redis-server && command -v pgbackrest && command -v promtool && command -v prometheus \
		&& command -v prometheus-postgres-exporter && command -v prometheus-redis-exporter \
		&& PATH="$$PATH:/usr/sbin" command -v pgbouncer && PATH="$$PATH:/usr/sbin" command -v haproxy \
		&& ls /usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/*/lib/pg_stat_statements.so; } >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium pgbouncer redis-server postgresql-15 pgbackrest prometheus prometheus-postgres-exporter prometheus-redis-exporter haproxy; }

pytest: install .env test-deps ## Run the test suite only (browser and PgBouncer tests included)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint migrations-check pytest ## Lint, migrations check and the whole test suite

bench-deps: ## Install wrk (the load generator) and redis-server (the run's own cache without REDIS_URL) (root or sudo, once)
	@{ command -v wrk && command -v redis-server; } >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk redis-server; }

# The HTTP scenarios serve pages with the Redis cache: REDIS_URL's, else a redis-server of the run's own.

bench: migrate bench-deps ## Benchmarks at a million submissions: a table and bench/results.json (docs/performance.md)
	$(PY) bench/run.py $(BENCH_ARGS)

bench-smoke: migrate bench-deps ## The benchmarks on a tiny dataset, one run each: proves the suite works (CI)
	$(PY) bench/run.py --smoke $(BENCH_ARGS)

db-stop: install .env ## Stop the embedded PostgreSQL (used when DATABASE_URL is unset)
	$(PY) manage.py embedded_db stop

clean: db-stop ## Stop the embedded database and delete .venv and var/ (all local data)
	rm -rf $(VENV) var
