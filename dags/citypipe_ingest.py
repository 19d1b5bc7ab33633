"""citypipe_ingest: landed Parquet -> GX validation -> DuckDB core + dq, every 10 minutes.

This file only wires; the steps live in ``steps.ingest`` (importable and tested without Airflow),
imported inside the tasks so that parsing the DAG stays light.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, get_current_context, task

if TYPE_CHECKING:
    from common.settings import Settings
    from steps.ingest import Found, Loaded, Validated

# Every task that writes the warehouse takes a slot of this pool. The runner sizes it from
# settings (dags/_runner.py ensure_pool): one slot on the single DuckDB file (which also
# has its lock), several on a lake, where conflicting commits are redone.
DUCKDB_POOL = "citypipe_duckdb"
FEEDS = ["air", "water", "waterlogging", "traffic"]


def _on_failure(context: Any) -> None:
    from steps import ingest

    ingest.record_task_failure(context)


def _settings() -> Settings:
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
`core.dirty_days` for the KPI DAG, compute the open day's provisional values
(`kpi.intraday_*`: hourly AQI, TPI, waterlogging depths and events, good days with today
open; transforms/intraday.py), and rebuild the GX Data Docs.

Idempotent: a rerun loads nothing twice (ledger by sha256). Writers share the one-slot pool
`citypipe_duckdb` and the warehouse file lock. See docs/warehouse.md and docs/data_quality.md.
""",
)
def citypipe_ingest() -> None:
    # multiple_outputs: the typed dicts' keys are also pushed one by one, as before
    @task(multiple_outputs=True)
    def discover() -> Found:
        from steps import ingest

        return ingest.discover(_settings(), str(get_current_context()["run_id"]))

    @task(multiple_outputs=True)
    def validate(feed: str, found: Found) -> Validated:
        from steps import ingest

        return ingest.validate_feed(_settings(), feed, found["files"][feed], found["load_run_id"])

    @task(pool=DUCKDB_POOL, multiple_outputs=True)
    def load(summary: Validated) -> Loaded:
        from steps import ingest

        return ingest.load_feed(_settings(), summary)

    @task(pool=DUCKDB_POOL, multiple_outputs=True)
    def load_quarantine(found: Found) -> dict[str, int]:
        from steps import ingest

        return ingest.load_quarantine(_settings(), found)

    @task(pool=DUCKDB_POOL)
    def record_dq() -> int:
        from steps import ingest

        return ingest.record_dq(_settings())

    @task(pool=DUCKDB_POOL)
    def mark_dirty_days() -> int:
        from steps import ingest

        return ingest.mark_dirty_days(_settings())

    # Ahead of the Data Docs in the one-slot pool: the provisional hour is what the operations
    # centre waits for (issue 11: within 15 minutes of the hour's end).
    @task(pool=DUCKDB_POOL, priority_weight=10)
    def compute_intraday() -> dict[str, Any]:
        from steps import ingest

        return ingest.compute_intraday(_settings())

    @task(pool=DUCKDB_POOL)
    def build_data_docs(found: Found) -> str | None:
        from steps import ingest

        return ingest.build_data_docs(_settings(), found)

    found = discover()
    loaded = load.expand(summary=validate.partial(found=found).expand(feed=FEEDS))
    quarantined = load_quarantine(found)
    recorded = record_dq()
    [loaded, quarantined] >> recorded
    marked = mark_dirty_days()
    recorded >> marked >> build_data_docs(found)
    # Not upstream of the Data Docs: a failed intraday run must not keep the run's batches
    # parked; the next run recomputes it anyway.
    marked >> compute_intraday()


citypipe_ingest()
