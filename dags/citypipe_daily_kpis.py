"""citypipe_daily_kpis: the KPI pack of yesterday (and of late-data days), daily at 01:00 local time.

This file only wires; the steps live in ``steps.kpis`` (readable top to bottom, testable
without Airflow).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from steps import kpis

# Every task that writes the warehouse takes a slot of this pool. The runner sizes it from
# settings (dags/_runner.py ensure_pool): one slot on the single DuckDB file (which also
# has its lock), several on a lake, where conflicting commits are redone.
DUCKDB_POOL = "citypipe_duckdb"
# The timetable needs its zone when this file is parsed: read from settings (configuration from
# the environment, no I/O), the one source of the city's time zone.
TIMEZONE = kpis.schedule_timezone()


@dag(
    dag_id="citypipe_daily_kpis",
    # 01:00 local time every day. A trigger timetable, pinned explicitly: the logical date is
    # the run's own time (not a data-interval start), so "yesterday" does not depend on the
    # create_cron_data_intervals setting.
    schedule=CronTriggerTimetable("0 1 * * *", timezone=TIMEZONE),
    # Airflow creates no task before start_date, so `citypipe run --date D` of an earlier day
    # would "succeed" empty: 2012-01-01 is the oldest standard in reference/ (GB 3095-2012, HJ
    # 633-2012). catchup=False, so this early start never makes the scheduler backfill anything.
    start_date=pendulum.datetime(2012, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["citypipe", "kpi", "duckdb"],
    default_args={
        "owner": "citypipe",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=1),
        "on_failure_callback": kpis.on_failure,
    },
    on_failure_callback=kpis.on_failure,
    doc_md="""
### citypipe_daily_kpis

At 01:00 local time (`CITYPIPE_TIMEZONE`), computes natural day D = the previous local day:
air (HJ 633 / HJ 663), water (GB 3838), waterlogging and traffic KPIs, then the KPI pack
`kpi.pack_values`.

- **Which day**: conf `{"date": "D"}` wins (`citypipe run citypipe_daily_kpis --date D`
  computes day D itself); otherwise D = local date of the logical date - 1 day.
- **Late data**: days marked in `core.dirty_days` within the 7-day look-back, and days with a
  waterlogging event still open, are recomputed with D (one range pass, earliest day to D).
- **Restatements**: a published value that changes is recorded in `kpi.restatements`.
- **Publication** (`publish_pack`, after `compute`): the newest day of every KPI and
  dimension, retained on MQTT under `city/{city}/kpi/{kpi_id}/{dimension}` (QoS 1). Broker
  down: the task fails, is recorded, and is retried (after about 1, 2 and 4 minutes); the next run republishes
  anyway, since it publishes what the warehouse holds. No `CITYPIPE_MQTT_URL`: skipped, logged.
- **Status**: provisional until the day has left the look-back with enough coverage
  (`reference/standards/kpi_status.csv`), then final.

Idempotent. Writers share the pool `citypipe_duckdb`: one slot on the single DuckDB file (plus
its lock), several on a lake (`CITYPIPE_WAREHOUSE_WRITER_SLOTS`).
See docs/kpis.md and docs/conventions.md.
""",
)
def citypipe_daily_kpis() -> None:
    # plan writes too (it loads the standards' reference tables)
    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def plan() -> kpis.Plan:
        ctx = get_current_context()
        return kpis.plan(kpis.load_settings(), ctx["dag_run"].conf, ctx.get("logical_date"))

    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def compute(days: kpis.Plan) -> kpis.RunResult:
        run_id = get_current_context()["run_id"]
        return kpis.compute(kpis.load_settings(), days, f"citypipe_daily_kpis {run_id}")

    @task
    def restatements(result: kpis.RunResult) -> int:
        return len(kpis.restatements(kpis.load_settings(), result))

    # Reads only (no pool slot). Retried with backoff: a broker that is down or restarting must
    # not lose the publication (and the next run republishes whatever the broker lacks).
    @task(
        retries=3,
        retry_delay=timedelta(minutes=1),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=10),
        execution_timeout=timedelta(minutes=10),
    )
    def publish_pack(result: kpis.RunResult) -> kpis.Published:
        return kpis.publish_pack(kpis.load_settings(), result)

    computed = compute(plan())
    restatements(computed)
    publish_pack(computed)


citypipe_daily_kpis()
