"""Two `citypipe run citypipe_ingest` for the same date at once: one runs, the other is refused
clearly (no Airflow integrity error, no traceback), and the warehouse holds each reading once.

Real `citypipe run` subprocesses with real Airflow (dag.test) on SQLite metadata.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from support.wh_factory import series, write_landing

from citypipe.rundag import EXIT_RUN_IN_PROGRESS, RunInProgress, run_dag
from common.settings import REPO_ROOT, Settings
from warehouse import db

pytestmark = pytest.mark.integration


def citypipe_run(settings: Settings, day: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CITYPIPE_HOME": str(settings.home)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "citypipe.cli", "run", "citypipe_ingest", "--date", day],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_same_date_runs_at_once_one_refused_clearly(settings: Settings) -> None:
    start = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    write_landing(settings.home, "air", series("air", start, 60))
    write_landing(settings.home, "waterlogging", series("waterlogging", start, 30, depth_cm=0.0))
    day = start.date().isoformat()

    procs = [citypipe_run(settings, day) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    everything = "\n".join(out + err for _, out, err in results)
    assert codes == [0, EXIT_RUN_IN_PROGRESS], everything[-5000:]
    refused = next(err for rc, _, err in results if rc == EXIT_RUN_IN_PROGRESS)
    assert f"a citypipe_ingest run for {day} is already in progress (pid " in refused
    assert "Traceback" not in everything and "IntegrityError" not in everything

    with db.reader(settings) as con:
        air = con.execute("select count(*), count(distinct observed_at) from core.obs_air")
        assert air.fetchone() == (60, 60)
        wl = con.execute("select count(*) from core.obs_waterlogging").fetchone()
        assert wl == (30,)
        assert con.execute("select count(*) from meta.load_ledger").fetchone() == (2,)

    # The lock went with the run: the same date runs again (nothing new to load).
    assert run_dag(settings, "citypipe_ingest", start.date()) == 0


def test_run_lock_refuses_only_the_same_dag_and_date(settings: Settings) -> None:
    from citypipe.rundag import _take_run_lock

    day = datetime(2026, 11, 28).date()
    fd = _take_run_lock(settings, "citypipe_ingest", day)
    try:
        with pytest.raises(RunInProgress, match=f"pid {os.getpid()}"):
            run_dag(settings, "citypipe_ingest", day)
        other = _take_run_lock(settings, "citypipe_ingest", day.replace(day=27))
        os.close(other)
        other = _take_run_lock(settings, "citypipe_daily_kpis", day)
        os.close(other)
    finally:
        os.close(fd)
