"""citypipe_maintenance: warehouse housekeeping, daily at 03:00 local time (after the KPI run).

This file only wires; the step lives in ``steps.maintenance`` (testable without Airflow).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from steps import maintenance

# The writers' pool: on the single file, CHECKPOINT needs the file to itself.
DUCKDB_POOL = "citypipe_duckdb"
# The timetable needs its zone when this file is parsed: read from settings (no I/O).
TIMEZONE = maintenance.schedule_timezone()


@dag(
    dag_id="citypipe_maintenance",
    # 03:00 local: two hours after citypipe_daily_kpis (01:00, usually done within minutes), so
    # the merge compacts the files of the night's KPI run and does not race it.
    schedule=CronTriggerTimetable("0 3 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["citypipe", "maintenance", "duckdb"],
    default_args={
        "owner": "citypipe",
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": maintenance.on_failure,
    },
    on_failure_callback=maintenance.on_failure,
    doc_md="""
### citypipe_maintenance

Daily at 03:00 local time (`CITYPIPE_TIMEZONE`), after `citypipe_daily_kpis`.

- **DuckLake** (SQLite or PostgreSQL catalog): merges small adjacent Parquet files (every load
  commits its own), expires snapshots older than `CITYPIPE_SNAPSHOT_RETENTION_DAYS` (time
  travel, e.g. `citypipe kpis --as-published`, reaches back that far), deletes the data files
  nothing reads any more (those replaced at least an hour earlier: readers still scanning them
  finish first).
- **Single DuckDB file**: `CHECKPOINT` (DuckDB compacts its own file).

Reports the catalog's size, data files and bytes, and snapshots before and after: in the task
log, the XCom and `{home}/status/maintenance.json`. The same as `citypipe warehouse maintain`.
Idempotent. The task takes a slot of the writers' pool `citypipe_duckdb`. See
docs/warehouse.md.
""",
)
def citypipe_maintenance() -> None:
    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def maintain() -> maintenance.Report:
        return maintenance.maintain(maintenance.load_settings())

    maintain()


citypipe_maintenance()
