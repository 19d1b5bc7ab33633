"""citypipe_ingest: landed Parquet -> GX validation -> DuckDB core + dq, every 10 minutes.

This file only wires; the steps live in ``warehouse.pipeline`` (testable without Airflow).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

# Every task that writes the DuckDB file takes a slot of this one-slot pool (and the file lock).
DUCKDB_POOL = "citypipe_duckdb"
FEEDS = ["air", "water", "waterlogging", "traffic"]


def _on_failure(context: Any) -> None:
    from warehouse.alerts import record_task_failure

    record_task_failure(context)


def _settings() -> Any:
    from common.settings import get_settings

    return get_settings()


@dag(
    dag_id="citypipe_ingest",
    schedule="*/10 * * * *",
    # Airflow creates no task before start_date: a run of an earlier logical date would "succeed"
    # empty. catchup=False, so this early start never makes the scheduler backfill anything.
    start_date=datetime(2012, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["citypipe", "ingest", "great_expectations", "duckdb"],
    default_args={
        "owner": "citypipe",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": _on_failure,
    },
    on_failure_callback=_on_failure,
    doc_md="""
### citypipe_ingest

Every 10 minutes: find landing files not yet in the ledger, validate each feed's batch with
its Great Expectations suite, load it into DuckDB in one transaction (core rows with
`is_valid` / `failed_expectations`, `dq.flagged_readings`, `dq.validation_runs`, ledger),
load the quarantine files, recompute `dq.site_day_completeness`, mark changed days in
`core.dirty_days` for the KPI DAG, and rebuild the GX Data Docs.

Idempotent: a rerun loads nothing twice (ledger by sha256). Writers share the one-slot pool
`citypipe_duckdb` and the warehouse file lock. See docs/warehouse.md and docs/data_quality.md.
""",
)
def citypipe_ingest() -> None:
    @task
    def discover() -> dict[str, Any]:
        from warehouse.pipeline import discover_new_files, safe_id

        run_id = get_current_context()["run_id"]
        return {"load_run_id": safe_id(str(run_id)), "files": discover_new_files(_settings())}

    @task
    def validate(feed: str, found: dict[str, Any]) -> dict[str, Any]:
        from warehouse.pipeline import validate_feed_batch

        return validate_feed_batch(_settings(), feed, found["files"][feed], found["load_run_id"])

    @task(pool=DUCKDB_POOL)
    def load(summary: dict[str, Any]) -> dict[str, Any]:
        from warehouse.pipeline import load_feed_batch

        return load_feed_batch(_settings(), summary)

    @task(pool=DUCKDB_POOL)
    def load_quarantine(found: dict[str, Any]) -> dict[str, int]:
        from warehouse.pipeline import load_quarantine as _load

        return _load(_settings(), found["files"]["quarantine"], found["load_run_id"])

    @task(pool=DUCKDB_POOL)
    def record_dq() -> int:
        from warehouse.pipeline import record_dq as _record

        return _record(_settings())

    @task(pool=DUCKDB_POOL)
    def mark_dirty_days() -> int:
        from warehouse.pipeline import mark_dirty_days as _mark

        return len(_mark(_settings()))

    @task(pool=DUCKDB_POOL)
    def build_data_docs(found: dict[str, Any]) -> str | None:
        from warehouse.pipeline import build_data_docs as _build
        from warehouse.pipeline import cleanup_work

        index = _build(_settings(), found["load_run_id"])
        cleanup_work(_settings(), found["load_run_id"])
        return index

    found = discover()
    loaded = load.expand(summary=validate.partial(found=found).expand(feed=FEEDS))
    quarantined = load_quarantine(found)
    recorded = record_dq()
    [loaded, quarantined] >> recorded
    recorded >> mark_dirty_days() >> build_data_docs(found)


citypipe_ingest()
