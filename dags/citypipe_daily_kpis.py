"""citypipe_daily_kpis: the KPI pack of yesterday (and of late-data days), daily at 01:00 China time.

This file only wires; the steps live in ``transforms.daily`` (testable without Airflow).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

# Every task that writes the DuckDB file takes a slot of this one-slot pool (and the file lock).
DUCKDB_POOL = "citypipe_duckdb"


def _on_failure(context: Any) -> None:
    from warehouse.alerts import record_task_failure

    record_task_failure(context)


def _settings() -> Any:
    from common.settings import get_settings

    return get_settings()


@dag(
    dag_id="citypipe_daily_kpis",
    # 01:00 Asia/Shanghai every day. A trigger timetable, pinned explicitly: the logical date is
    # the run's own time (not a data-interval start), so "yesterday" does not depend on the
    # create_cron_data_intervals setting.
    schedule=CronTriggerTimetable("0 1 * * *", timezone="Asia/Shanghai"),
    # Airflow creates no task before start_date, so `citypipe run --date D` of an earlier day
    # would "succeed" empty: 2012-01-01 is the oldest standard in reference/ (GB 3095-2012, HJ
    # 633-2012). catchup=False, so this early start never makes the scheduler backfill anything.
    start_date=pendulum.datetime(2012, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["citypipe", "kpi", "duckdb"],
    default_args={
        "owner": "citypipe",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=1),
        "on_failure_callback": _on_failure,
    },
    on_failure_callback=_on_failure,
    doc_md="""
### citypipe_daily_kpis

At 01:00 China time, computes natural day D = the previous local day: air (HJ 633 / HJ 663),
water (GB 3838), waterlogging and traffic KPIs, then the KPI pack `kpi.kpi_values`.

- **Which day**: conf `{"date": "D"}` wins (`citypipe run citypipe_daily_kpis --date D`
  computes day D itself); otherwise D = local date of the logical date - 1 day.
- **Late data**: days marked in `core.dirty_days` within the 7-day look-back, and days with a
  waterlogging event still open, are recomputed with D (one range pass, earliest day to D).
- **Restatements**: a published value that changes is recorded in `kpi.kpi_restatements`.
- **Status**: provisional until the day has left the look-back with enough coverage
  (`reference/standards/kpi_status.csv`), then final.

Idempotent. Writers share the one-slot pool `citypipe_duckdb` and the warehouse file lock.
See docs/kpis.md and docs/conventions.md.
""",
)
def citypipe_daily_kpis() -> None:
    @task
    def plan() -> dict[str, Any]:
        from transforms.daily import plan_step, target_day

        ctx = get_current_context()
        settings = _settings()
        conf = ctx["dag_run"].conf or {}
        day = target_day(conf, ctx.get("logical_date"), settings.timezone)
        return plan_step(settings, day)

    @task(pool=DUCKDB_POOL)
    def compute(days: dict[str, Any]) -> dict[str, Any]:
        from transforms.daily import compute_step

        run_id = get_current_context()["run_id"]
        return compute_step(_settings(), days, f"citypipe_daily_kpis {run_id}")

    @task
    def restatements(summary: dict[str, Any]) -> int:
        from transforms.daily import restatements_step

        return len(restatements_step(_settings(), summary))

    restatements(compute(plan()))


citypipe_daily_kpis()
