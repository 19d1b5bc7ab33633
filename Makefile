# One entry point for people and CI. Every target goes through uv and the committed uv.lock.
UV := ./scripts/uv.sh
RUN := $(UV) run --frozen

.PHONY: sync demo test test-fast check fmt bench-ingest bench-load bench-kpi clean

sync:
	$(UV) sync --frozen

demo: sync
	$(RUN) citypipe demo

test: sync
	$(RUN) pytest

test-fast: sync
	$(RUN) pytest -m "not slow"

check: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench-ingest: sync
	$(RUN) python -m bench.bench_ingest

bench-load: sync
	$(RUN) python -m bench.bench_load

bench-kpi: sync
	$(RUN) python -m bench.bench_kpi

clean:
	rm -rf data .pytest_cache .ruff_cache
