"""``citypipe run DAG --date YYYY-MM-DD [--conf JSON]``: one DAG run via Airflow's ``dag.test()``.

Does not import Airflow: it prepares the environment (AIRFLOW_HOME under the data directory,
DAGS_FOLDER = the repo's dags/, SQLite metadata, no examples, quiet logs, CITYPIPE_*) and runs
``dags/_runner.py`` in a subprocess, because Airflow reads its configuration at import.
The logical date is D 00:00 in the city's time zone, and the conf carries {"date": D}.

One run per (DAG, date) at a time: ``dag.test()`` replaces any run of the same logical date, so a
second concurrent run would delete the first one's run row and die on an Airflow integrity error.
A lock file per (DAG, date) under AIRFLOW_HOME/runs refuses the second run with a clear message
(exit 75, EX_TEMPFAIL: try again later). Runs of other dates or DAGs go ahead in parallel.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from common.datadir import dir_mode, file_mode
from common.settings import Settings

# Exit status of a run refused because the same DAG already runs for the same date.
EXIT_RUN_IN_PROGRESS = 75


class RunInProgress(RuntimeError):
    """Another ``citypipe run`` of the same DAG and date holds its run lock."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
            # Airflow chmods its task logs (default 0o664/0o775): keep them to the data policy.
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": oct(file_mode(settings)),
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": oct(dir_mode(settings)),
            "CITYPIPE_HOME": str(settings.home),
            "CITYPIPE_CITY": settings.city,
            "CITYPIPE_TIMEZONE": settings.timezone,
            "CITYPIPE_REFERENCE_DIR": str(settings.reference_dir),
            "CITYPIPE_LOCK_TIMEOUT_S": str(settings.lock_timeout_s),
            # The repo root on the path, so DAG files import citypipe/warehouse/transforms.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(settings.dags_folder.parent), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def run_lock_path(settings: Settings, dag_id: str, day: date) -> Path:
    return settings.airflow_home / "runs" / f"{dag_id}.{day.isoformat()}.lock"


def _take_run_lock(settings: Settings, dag_id: str, day: date) -> int:
    """The (DAG, date) run lock's descriptor, held; RunInProgress when another run has it."""
    path = run_lock_path(settings, dag_id, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
        os.close(fd)
        raise RunInProgress(
            f"a {dag_id} run for {day} is already in progress ({holder});"
            " not starting a second one, try again when it has finished"
        ) from None
    since = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {since}".encode(), 0)
    return fd


def run_dag(
    settings: Settings,
    dag_id: str,
    day: date,
    conf: dict[str, object] | None = None,
    verbose: bool = False,
) -> int:
    """Run the DAG once for ``day``; its exit status. Raises RunInProgress (nothing started)
    when the same DAG already runs for the same date."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    fd = _take_run_lock(settings, dag_id, day)
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
    try:
        # The runner inherits the locked descriptor: the lock lasts while either process lives.
        return subprocess.run(
            cmd, env=airflow_env(settings, verbose), check=False, pass_fds=(fd,)
        ).returncode
    finally:
        os.close(fd)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    day = (
        date.fromisoformat(args.date)
        if args.date
        else datetime.now(ZoneInfo(settings.timezone)).date()
    )
    try:
        rc = run_dag(settings, args.dag_id, day, json.loads(args.conf), args.verbose)
    except RunInProgress as exc:
        print(f"citypipe run: {exc}", file=sys.stderr)
        return EXIT_RUN_IN_PROGRESS
    from warehouse import db

    if args.dag_id == "citypipe_ingest" and db.exists(settings):
        from warehouse.db import LockTimeout
        from warehouse.report import ingest_summary

        try:
            print(ingest_summary(settings))
        except LockTimeout as exc:  # the run itself is done: its status stands
            print(f"citypipe run: no summary: {exc}", file=sys.stderr)
    print(f"citypipe run {args.dag_id} --date {day}: {'ok' if rc == 0 else 'FAILED'}")
    return rc
