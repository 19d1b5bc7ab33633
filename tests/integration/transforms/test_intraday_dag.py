"""The intraday task of the 10-minute DAG: wired after the loads, in the warehouse pool, ahead of
the Data Docs; and a real ``dag.test()`` run (``citypipe run citypipe_ingest``) over readings of
the last two hours that leaves the last complete hour's provisional AQI in the warehouse."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.intraday_helpers import land

from citypipe.rundag import airflow_env, run_dag
from common.settings import Settings
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.backends("file")]

WIRING = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags["citypipe_ingest"]
t = dag.get_task("compute_intraday")
docs = dag.get_task("build_data_docs")
print("RESULT" + json.dumps({
    "pool": t.pool, "retries": t.retries, "priority": t.priority_weight,
    "docs_priority": docs.priority_weight, "upstream": sorted(t.upstream_task_ids),
    "downstream": sorted(t.downstream_task_ids),
    "timeout": bool(t.execution_timeout), "callback": bool(t.on_failure_callback),
}))
"""


def test_intraday_task_wiring(tmp_path: Path, settings: Settings) -> None:
    env = airflow_env(settings)
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow' / 'a.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", WIRING], env=env, capture_output=True, text=True, timeout=300
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    out = json.loads(line.removeprefix("RESULT"))
    assert out["pool"] == "citypipe_duckdb"
    assert out["upstream"] == ["mark_dirty_days"] and out["downstream"] == []
    assert out["priority"] > out["docs_priority"]
    assert out["retries"] == 2 and out["timeout"] and out["callback"]


@pytest.mark.slow
def test_dag_run_computes_the_last_complete_hour(settings: Settings) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    land(settings, now - timedelta(hours=2), now)
    assert run_dag(settings, "citypipe_ingest", now.date()) == 0
    # the hour that ended last before the run (readings of its full 60 minutes were landed)
    last_hour = now.replace(minute=0)
    with db.reader(settings) as con:
        got = con.execute(
            "select count(*) filter (where aqi is not null), bool_and(is_provisional)"
            " from kpi.intraday_air_hourly where hour_end = ?",
            [last_hour],
        ).fetchone()
        county = con.execute(
            "select aqi from kpi.intraday_air_hourly where scope = 'county' and hour_end = ?",
            [last_hour],
        ).fetchone()
    assert got == (6, True)  # five stations and the county
    assert county is not None and county[0] is not None
