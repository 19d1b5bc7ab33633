"""Warehouse maintenance on real lakes (SQLite and PostgreSQL catalogs) and on the single file:
many small commits become fewer files, snapshots past the retention go (and only those), the
files nothing reads are deleted, the data reads the same, and the sizes are reported. Also the
CLI and one real Airflow run of the citypipe_maintenance DAG."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from support.kpi_history import CST, pack, publish_then_restate
from support.lake_catalog import parquet_files, shift_snapshots

from citypipe.cli import main
from citypipe.rundag import airflow_env, run_dag
from common.settings import Settings
from warehouse import db, maintenance

N_COMMITS = 24
START = datetime(2026, 6, 12, 8, 0, tzinfo=CST)

# Order-independent content of the two test tables.
CONTENT = (
    "select (select count(*) from core.readings), (select sum(hash(r)) from core.readings as r),"
    " (select count(*) from core.events), (select sum(hash(e)) from core.events as e)"
)


def small_commits(settings: Settings) -> int:
    """Two tables filled by one small commit each (as 10-minute loads do), a rename, a delete;
    returns the snapshot id after the first half of the commits."""
    con = db.connect(settings)
    try:
        con.execute("create schema if not exists core")
        con.execute("create table core.readings (site_id varchar, n integer, v double)")
        con.execute("create table core.events_v1 (n integer, what varchar)")
        half = 0
        for i in range(N_COMMITS):
            con.execute("insert into core.readings values ('WS-AIR-01', ?, ?)", [i, i / 3])
            if i < 4:
                con.execute("insert into core.events_v1 values (?, 'load')", [i])
                continue
            if i == 4:
                # A renamed table (as migration 0250 does) keeps its files through expiry.
                con.execute("alter table core.events_v1 rename to events")
            con.execute("insert into core.events values (?, 'load')", [i])
            if i == N_COMMITS // 2:
                half = con.execute(
                    "select max(snapshot_id) from ducklake_snapshots('lake')"
                ).fetchone()[0]
        con.execute("delete from core.events where n < 3")
        return int(half)
    finally:
        con.close()


def content(settings: Settings, version: int | None = None) -> tuple[object, ...]:
    with db.reader(settings) as con:
        if version is None:
            row = con.execute(CONTENT).fetchone()
        else:
            row = con.execute(
                "select count(*), sum(hash(r)) from core.readings as r at (version => ?)",
                [version],
            ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.backends("sqlite", "postgres")
def test_lake_maintenance_compacts_expires_and_keeps_the_data(settings: Settings) -> None:
    half = small_commits(settings)
    data_before = content(settings)
    files_on_disk_before = len(parquet_files(settings))
    with db.reader(settings) as con:
        recent = con.execute("select max(snapshot_id) from ducklake_snapshots('lake')").fetchone()
    assert recent is not None
    recent_version = int(recent[0]) - 2  # within the retention: must stay readable
    at_recent = content(settings, recent_version)
    # The first half of the history is 100 days old now: past the 90-day retention.
    moved = shift_snapshots(settings, half, timedelta(days=100))
    assert moved == half + 1  # snapshot ids start at 0

    result = maintenance.maintain(settings, retention_days=90, cleanup_grace=timedelta(0))

    b, a = result.before, result.after
    assert result.backend == settings.warehouse_target.kind
    assert b.tables == a.tables == 2
    assert b.data_files is not None and a.data_files is not None
    assert b.data_files >= 2 * N_COMMITS - 3 and a.data_files <= 4, (b, a)
    assert b.data_bytes and a.data_bytes and 0 < a.data_bytes < b.data_bytes
    assert b.catalog_bytes > 0 and a.catalog_bytes > 0
    # Exactly the old snapshots went; the recent ones (and time travel to them) stayed.
    assert result.snapshots_expired == moved
    assert b.snapshots is not None and a.snapshots is not None
    assert a.snapshots == b.snapshots - moved + 1  # + the merge's own snapshot
    assert a.oldest_snapshot_at is not None and result.expired_before is not None
    assert a.oldest_snapshot_at >= result.expired_before
    assert content(settings) == data_before
    assert content(settings, recent_version) == at_recent
    # With no grace, every file nothing reads is gone from disk. The three one-row files the
    # delete dropped stay: snapshots before it are within the retention and still read them.
    assert result.files_removed > 0
    on_disk = len(parquet_files(settings))
    assert on_disk == a.data_files + (a.delete_files or 0) + 3 < files_on_disk_before
    assert files_on_disk_before - on_disk < result.files_removed  # the merged files are new
    # A second run finds nothing more to do.
    again = maintenance.maintain(settings, retention_days=90, cleanup_grace=timedelta(0))
    assert again.snapshots_expired == 0 and again.files_removed == 0
    assert again.after.data_files == a.data_files
    assert content(settings) == data_before


@pytest.mark.backends("sqlite")
def test_replaced_files_stay_for_the_grace_period(settings: Settings) -> None:
    small_commits(settings)
    before = len(parquet_files(settings))
    result = maintenance.maintain(settings)  # the defaults: 90 days, one hour of grace
    assert result.retention_days == settings.snapshot_retention_days
    assert result.snapshots_expired == 0 and result.files_removed == 0
    assert result.after.data_files is not None and result.before.data_files is not None
    assert result.after.data_files < result.before.data_files
    # The merged files are new; the replaced ones wait for a later run.
    assert len(parquet_files(settings)) > before


@pytest.mark.backends("file")
def test_single_file_checkpoints_and_reports_its_size(settings: Settings) -> None:
    con = db.connect(settings)
    try:
        con.execute("create schema core")
        con.execute("create table core.readings as select range as n from range(100000)")
        con.execute("delete from core.readings where n % 2 = 0")
    finally:
        con.close()
    result = maintenance.maintain(settings)
    assert result.backend == "file" and result.retention_days is None
    assert result.after.catalog_bytes == settings.warehouse_path.stat().st_size > 0
    assert result.after.data_files is None and result.after.snapshots is None
    assert "CHECKPOINT" in result.note and "DuckDB" in result.note
    with db.reader(settings) as r:
        assert r.execute("select count(*) from core.readings").fetchone() == (50000,)


@pytest.mark.backends("sqlite")
def test_cli_maintain_prints_the_report(settings: Settings, capsys) -> None:
    small_commits(settings)
    rc = main(["warehouse", "maintain", "--format", "json", "--grace-minutes", "0"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == "sqlite" and doc["retention_days"] == 90
    assert doc["after"]["data_files"] < doc["before"]["data_files"]
    status = json.loads((settings.status_dir / "maintenance.json").read_text())
    assert status["after"] == doc["after"]
    assert main(["warehouse", "maintain"]) == 0
    out = capsys.readouterr().out
    assert "data files" in out and "catalog bytes" in out and "snapshot" in out


@pytest.mark.backends("file")
def test_cli_maintain_without_a_warehouse_says_so(settings: Settings, capsys) -> None:
    assert main(["warehouse", "maintain"]) == 1
    err = capsys.readouterr().err
    assert "no warehouse" in err and "Traceback" not in err


INTEGRITY = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags.get("citypipe_maintenance")
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "found": dag is not None}
if dag is not None:
    out.update(
        tags=sorted(dag.tags), timetable=dag.timetable.expression, doc=bool(dag.doc_md),
        max_active_runs=dag.max_active_runs, catchup=dag.catchup,
        tasks={t.task_id: {"pool": t.pool, "retries": t.retries,
                           "callback": bool(t.on_failure_callback)} for t in dag.tasks},
    )
print("RESULT" + json.dumps(out))
"""


def test_dag_integrity_without_io_at_import(tmp_path: Path, settings: Settings) -> None:
    missing_home = tmp_path / "does-not-exist"
    env = airflow_env(settings.model_copy(update={"home": missing_home}))
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow' / 'a.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", INTEGRITY], env=env, capture_output=True, text=True, timeout=300
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    out = json.loads(line.removeprefix("RESULT"))
    assert out["errors"] == {} and out["found"]
    assert {"citypipe", "maintenance"} <= set(out["tags"])
    assert out["timetable"] == "0 3 * * *"  # after citypipe_daily_kpis (01:00)
    assert out["max_active_runs"] == 1 and out["catchup"] is False and out["doc"]
    assert out["tasks"] == {"maintain": {"pool": "citypipe_duckdb", "retries": 2, "callback": True}}
    assert not missing_home.exists(), "importing the DAG must not create the data directory"


@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_maintenance_dag_run(wh, insert_obs, settings: Settings) -> None:
    """A real KPI history (migrations, loads, two KPI runs, a restatement) made of many small
    commits, its older half past the retention; one real Airflow run of the DAG."""
    publish_then_restate(wh, insert_obs)
    for d in range(20):  # ten-minute loads: one small commit each
        insert_obs("traffic", [{"site_id": "WS-TRF-01", "observed_at": START + timedelta(minutes=10 * d), "period_s": 300, "lane": 1, "volume_veh": 40.0, "speed_kmh": 30.0, "occupancy_pct": 10.0}])  # fmt: skip
    pack_before = pack(wh)
    obs_before = wh.execute("select count(*), sum(hash(o)) from core.obs_traffic as o").fetchone()
    half = wh.execute("select max(snapshot_id) // 2 from ducklake_snapshots('lake')").fetchone()
    wh.close()
    assert half is not None
    moved = shift_snapshots(settings, half[0], timedelta(days=settings.snapshot_retention_days + 1))

    assert run_dag(settings, "citypipe_maintenance", date.today()) == 0

    report = json.loads((settings.status_dir / "maintenance.json").read_text())
    assert report["backend"] == "sqlite" and report["retention_days"] == 90
    assert report["snapshots_expired"] == moved
    assert report["after"]["data_files"] < report["before"]["data_files"]
    assert report["after"]["snapshots"] < report["before"]["snapshots"]
    with db.reader(settings) as con:
        assert pack(con) == pack_before
        assert (
            con.execute("select count(*), sum(hash(o)) from core.obs_traffic as o").fetchone()
            == obs_before
        )
