"""The Airflow DAG: integrity (no I/O at import) and real dag.test runs through `citypipe run`.

Airflow reads its configuration at import, so every Airflow step runs in a subprocess with its
own AIRFLOW_HOME under tmp.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.wh_factory import series, write_landing

from citypipe.rundag import airflow_env, run_dag
from common.settings import REPO_ROOT, Settings
from warehouse import db

# The single file and DuckLake-on-PostgreSQL; the end-to-end DAG run on all three backends.
pytestmark = [pytest.mark.integration, pytest.mark.backends("file", "postgres")]

INTEGRITY = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags.get("citypipe_ingest")
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "found": dag is not None}
if dag is not None:
    out.update(
        tags=sorted(dag.tags),
        schedule=str(dag.schedule) if hasattr(dag, "schedule") else None,
        max_active_runs=dag.max_active_runs,
        catchup=dag.catchup,
        doc=bool(dag.doc_md),
        tasks={t.task_id: {"pool": t.pool, "retries": t.retries,
                           "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                           "callback": bool(t.on_failure_callback)} for t in dag.tasks},
    )
print("RESULT" + json.dumps(out))
"""


@pytest.mark.backends("file")  # imports the DAG only: no warehouse is opened
def test_dag_integrity_without_io_at_import(tmp_path: Path, settings: Settings) -> None:
    missing_home = tmp_path / "does-not-exist"
    s = settings.model_copy(update={"home": missing_home})
    env = airflow_env(s)
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow' / 'a.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", INTEGRITY],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    out = json.loads(line.removeprefix("RESULT"))
    assert out["errors"] == {}
    assert out["found"]
    assert {"citypipe", "ingest"} <= set(out["tags"])
    assert out["max_active_runs"] == 1 and out["catchup"] is False and out["doc"]
    tasks = out["tasks"]
    assert {
        "discover",
        "validate",
        "load",
        "load_quarantine",
        "record_dq",
        "mark_dirty_days",
        "build_data_docs",
    } <= set(tasks)
    for tid in ("load", "load_quarantine", "record_dq", "mark_dirty_days", "build_data_docs"):
        assert tasks[tid]["pool"] == "citypipe_duckdb", tid
    assert tasks["validate"]["pool"] != "citypipe_duckdb"
    assert all(t["retries"] == 2 and t["timeout"] and t["callback"] for t in tasks.values())
    assert not missing_home.exists(), "importing the DAG must not create the data directory"


@pytest.mark.slow
@pytest.mark.backends("file", "sqlite", "postgres")
def test_dag_run_end_to_end_and_rerun(settings: Settings) -> None:
    start = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    air = series("air", start, 90)
    for i, r in enumerate(air):
        r.update(
            pm25_ugm3=30.0 + i % 9,
            pm10_ugm3=70.0 + i % 5,
            no2_ugm3=20.0 + i % 3,
            o3_ugm3=60.0 + i % 4,
        )
    air[7]["pm25_ugm3"] = -2.0
    write_landing(settings.home, "air", air)
    write_landing(settings.home, "waterlogging", series("waterlogging", start, 30, depth_cm=0.0))

    assert run_dag(settings, "citypipe_ingest", start.date()) == 0

    def snapshot() -> tuple[object, ...]:
        with db.reader(settings) as con:
            return tuple(
                con.execute(sql).fetchone()
                for sql in (
                    # validity per value: the reading counts, only its PM2.5 does not
                    "select count(*) filter (where is_valid), count(*) filter "
                    "(where invalid_columns = ['pm25_ugm3']) from core.obs_air",
                    "select count(*) from core.obs_waterlogging",
                    "select count(*) from dq.flagged_readings",
                    "select count(*) from meta.load_ledger",
                    "select count(*) from core.dirty_days",
                    "select count(*) filter (where data_docs_url is not null) from dq.validation_runs",
                )
            )

    first = snapshot()
    assert first == ((90, 1), (30,), (1,), (2,), (2,), (2,))
    index = settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.exists()
    assert not list((settings.home / "work").rglob("*.parquet"))

    assert run_dag(settings, "citypipe_ingest", start.date()) == 0  # rerun: nothing new
    assert snapshot() == first

    from warehouse.report import ingest_summary

    text = ingest_summary(settings)
    assert "pm25_ugm3_in_range=1" in text and "Data Docs" in text


@pytest.mark.backends("file")  # fails before any warehouse is opened
def test_runner_is_generic_and_fails_on_unknown_dag(settings: Settings) -> None:
    rc = run_dag(settings, "no_such_dag", datetime(2026, 11, 28).date())
    assert rc != 0


def test_rundag_does_not_import_airflow() -> None:
    code = "import sys, citypipe.rundag, citypipe.cli; citypipe.cli.build_parser(); print('airflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
