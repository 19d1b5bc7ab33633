"""``citypipe run DAG --date YYYY-MM-DD [--conf JSON]``: one DAG run via Airflow's ``dag.test()``.

Does not import Airflow: it prepares the environment (AIRFLOW_HOME under the data directory,
DAGS_FOLDER = the repo's dags/, SQLite metadata, no examples, quiet logs, CITYPIPE_*) and runs
``dags/_runner.py`` in a subprocess, because Airflow reads its configuration at import.
The logical date is D 00:00 in the city's time zone, and the conf carries {"date": D}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date, datetime

from citypipe.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one Airflow DAG once for a date (dag.test)")
    p.add_argument("dag_id", help="e.g. citypipe_ingest or citypipe_daily_kpis")
    p.add_argument("--date", default=None, help="local date YYYY-MM-DD (default: today)")
    p.add_argument("--conf", default="{}", help="JSON object merged into the run's conf")
    p.add_argument("--verbose", action="store_true", help="Airflow INFO logs")
    p.set_defaults(func=run)


def airflow_env(settings: Settings, verbose: bool = False) -> dict[str, str]:
    """The environment of the runner subprocess."""
    home = settings.airflow_home
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "WARNING",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # Library deprecation chatter drowns the summary; --verbose keeps it.
            "PYTHONWARNINGS": env.get("PYTHONWARNINGS", "default") if verbose else "ignore",
            "GX_ANALYTICS_ENABLED": "false",
            "CITYPIPE_HOME": str(settings.home),
            "CITYPIPE_CITY": settings.city,
            "CITYPIPE_TIMEZONE": settings.timezone,
            "CITYPIPE_REFERENCE_DIR": str(settings.reference_dir),
            # The repo root on the path, so DAG files import citypipe/warehouse/transforms.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(settings.dags_folder.parent), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def run_dag(
    settings: Settings,
    dag_id: str,
    day: date,
    conf: dict[str, object] | None = None,
    verbose: bool = False,
) -> int:
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(settings.dags_folder / "_runner.py"),
        dag_id,
        "--date",
        day.isoformat(),
        "--conf",
        json.dumps(conf or {}),
        "--timezone",
        settings.timezone,
    ]
    return subprocess.run(cmd, env=airflow_env(settings, verbose), check=False).returncode


def run(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    day = (
        date.fromisoformat(args.date)
        if args.date
        else datetime.now(ZoneInfo(settings.timezone)).date()
    )
    rc = run_dag(settings, args.dag_id, day, json.loads(args.conf), args.verbose)
    if args.dag_id == "citypipe_ingest" and settings.warehouse_path.exists():
        from warehouse.report import ingest_summary

        print(ingest_summary(settings))
    print(f"citypipe run {args.dag_id} --date {day}: {'ok' if rc == 0 else 'FAILED'}")
    return rc
