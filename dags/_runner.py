"""Run one DAG once with ``dag.test()``: ``python dags/_runner.py DAG_ID --date D [--conf JSON]``.

Started by ``citypipe run`` (citypipe/rundag.py) in a subprocess whose environment already has
AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER, the SQLite metadata DB and CITYPIPE_*: Airflow reads
its settings at import, so they must be in place before this process imports it.
The run's logical date is D 00:00 in the city's time zone; conf gets {"date": D} too.
Exit status: 0 when the DAG run succeeded, 1 when it failed or could not run any task (a date
before the DAG's start_date).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DUCKDB_POOL = "citypipe_duckdb"


def ensure_metadata_db() -> None:
    """``airflow db migrate`` once, when the SQLite metadata file is missing.

    Under a lock beside it: runs started together (other dates, other DAGs) would otherwise
    migrate the same fresh file at once, or one would use it half-migrated.
    """
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    path = Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    if path is None:
        subprocess.run(migrate, check=True, stdout=subprocess.DEVNULL)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            subprocess.run(migrate, check=True, stdout=subprocess.DEVNULL)


def ensure_pool() -> None:
    """The pool of the warehouse-writing tasks, sized for the configured backend: one slot on
    the single DuckDB file, ``CITYPIPE_WAREHOUSE_WRITER_SLOTS`` on a lake."""
    from airflow.models.pool import Pool

    from common.settings import get_settings
    from steps import writer_pool_slots

    settings = get_settings()
    slots = writer_pool_slots(settings)
    Pool.create_or_update_pool(
        name=DUCKDB_POOL,
        slots=slots,
        description=(
            f"warehouse writers on {settings.warehouse_target.describe()}: {slots} at a time"
            + (" (one writer process per DuckDB file)" if slots == 1 else ", conflicts retried")
        ),
        include_deferred=False,
    )


def load_dag(dag_id: str) -> Any:  # an Airflow DAG (airflow is imported lazily)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, err in bag.import_errors.items():
            print(f"DAG import error in {path}:\n{err}", file=sys.stderr)
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise SystemExit(f"no DAG {dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}")
    return dag


def latest_task_start(dag: Any) -> datetime | None:
    """The latest start_date of the DAG's tasks: Airflow creates no task instance for a logical
    date before its task's start_date, and the run ends "success" without it (empty, at worst)."""
    starts = [t.start_date for t in dag.tasks if t.start_date is not None]
    return max(starts) if starts else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dag_id")
    p.add_argument("--date", required=True, help="YYYY-MM-DD (local natural day)")
    p.add_argument("--conf", default="{}", help="JSON object passed as the run's conf")
    p.add_argument("--timezone", default=None, help="default: the settings' (CITYPIPE_TIMEZONE)")
    args = p.parse_args(argv)
    if args.timezone is None:
        from common.settings import get_settings

        args.timezone = get_settings().timezone
    day = date.fromisoformat(args.date)
    conf = {"date": day.isoformat(), **json.loads(args.conf)}
    logical = datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(args.timezone))

    ensure_metadata_db()
    ensure_pool()
    dag = load_dag(args.dag_id)
    first = latest_task_start(dag)
    if first is not None and logical < first:
        print(
            f"dag {args.dag_id}: {day} is before the DAG's start_date"
            f" {first.astimezone(ZoneInfo(args.timezone)).date()};"
            " Airflow would run no task and report success, so nothing was run",
            file=sys.stderr,
        )
        return 1
    dr = dag.test(logical_date=logical, run_conf=conf)
    state = str(getattr(dr, "state", "unknown"))
    print(f"dag {args.dag_id} run {getattr(dr, 'run_id', '?')}: {state}", file=sys.stderr)
    return 0 if state.endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main())
