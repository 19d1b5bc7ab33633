# One entry point for people and CI. Every target goes through uv and the committed uv.lock.
UV := ./scripts/uv.sh
RUN := $(UV) run --frozen

# What mypy and SQLFluff check: every package folder and every stage's SQL folder that exists.
# (Migrations are not linted: applied ones are never edited, see .sqlfluffignore.)
PY_PACKAGES := $(wildcard common citypipe dags steps ingestion alerts simulator warehouse expectations transforms serving bench)
SQL_DIRS := $(wildcard common/sql alerts/sql citypipe/sql warehouse/sql transforms/sql serving/sql steps/sql)

.PHONY: sync demo audit test test-fast test-unit test-integration test-reliability check lint typecheck sqllint fmt \
	bench-ingest bench-load bench-kpi bench-mixed bench-seq-gaps bench-alerts bench-serve \
	bench-freshness bench-shared bench-dashboard clean

sync:
	$(UV) sync --frozen

demo: sync
	$(RUN) citypipe demo

# Known vulnerabilities in every package uv.lock pins (pip-audit against PyPI's vulnerability
# data; ignored IDs with their reasons in deploy/audit-ignore.txt). Exit 3: the service did not
# answer, nothing was checked (scripts/audit.sh says why).
audit: sync
	./scripts/audit.sh

test: sync
	$(RUN) pytest

test-fast: sync
	$(RUN) pytest -m "not slow"

# In-process tests only (no broker, no Airflow, no warehouse file): tests/unit.
test-unit: sync
	$(RUN) pytest tests/unit

# Real Mosquitto, real Airflow runs, real DuckDB files and processes: tests/integration.
test-integration: sync
	$(RUN) pytest tests/integration

# Faults, load and hostile input across the whole chain (tests/reliability, docs/reliability.md)
# at the issue's sizes (100,000 readings, 3 minutes at 10,000 readings/s, ...); `make test` and
# CI run the same cases at their bounded size. Prints the table of figures at the end.
test-reliability: sync
	CITYPIPE_RELIABILITY_SCALE=full $(RUN) pytest tests/reliability -p no:cacheprovider

# The guard rails; .pre-commit-config.yaml runs the same three targets.
check: sync
	$(MAKE) --no-print-directory --keep-going lint typecheck sqllint

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck:
	$(RUN) mypy $(PY_PACKAGES)

sqllint:
	$(RUN) sqlfluff lint $(SQL_DIRS)

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench-ingest: sync
	$(RUN) python -m bench.bench_ingest

bench-load: sync
	$(RUN) python -m bench.bench_load

bench-kpi: sync
	$(RUN) python -m bench.bench_kpi

bench-mixed: sync
	$(RUN) python -m bench.bench_mixed

bench-seq-gaps: sync
	$(RUN) python -m bench.bench_seq_gaps

bench-alerts: sync
	$(RUN) python -m bench.bench_alerts

bench-serve: sync
	$(RUN) python -m bench.bench_serve

# From the end of an hour to its provisional hourly AQI in the API (docs/serving.md, Live).
bench-freshness: sync
	$(RUN) python -m bench.bench_freshness

# One `citypipe ingest` process against two on one shared subscription (docs/scaling.md).
bench-shared: sync
	$(RUN) python -m bench.bench_shared

# Time until the dashboard's tiles show their values, in headless Chromium.
bench-dashboard: sync
	$(RUN) python -m bench.bench_dashboard

clean:
	rm -rf data .pytest_cache .ruff_cache .mypy_cache
