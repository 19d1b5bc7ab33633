"""Issue 13: an Airflow task killed mid-load or mid-KPI run, then rerun, ends in the same warehouse
as an uninterrupted run; corrupt landing files are quarantined and never block later loads.

Real ``citypipe run`` processes (Airflow ``dag.test()`` on SQLite metadata), real DuckDB files
and a real DuckLake on a SQLite catalog. A kill is SIGKILL to the run's whole process group (CLI,
runner and all), at a moment the Airflow metadata shows the task running; the metadata must
still show it running afterwards (it never finished). Comparison: every table of core, dq, kpi,
int and meta, row for row (EXCEPT ALL both ways), run ids, wall clocks and the home's path
left out (support/rel_airflow.py EXCLUDED says why for each column).
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.rel_airflow import (
    EXCLUDED,
    Home,
    Kill,
    compare,
    kill_inside,
    land_city,
    show_diff,
    snapshot,
)
from support.reliability import Figures, at_scale

from citypipe.rundag import run_lock_path
from common.catalogue import FEEDS
from common.settings import Settings
from steps.ingest import discover
from warehouse import db
from warehouse.batch import STALE_WORK_AGE_S

DAY = date(2026, 11, 20)
INGEST, KPIS = "citypipe_ingest", "citypipe_daily_kpis"
WAREHOUSES = {
    "file": "duckdb:warehouse/citypipe.duckdb",
    "sqlite": "ducklake:sqlite:warehouse/catalog.sqlite",
}

# (task, map index, seconds after it was seen running, wait until the warehouse files grew).
# The ingest DAG's load is mapped per feed: 0 air, 1 water, 2 waterlogging, 3 traffic.
INGEST_KILLS = at_scale(
    ci=[("load", 2, 0.0, True)],
    # load[3] (traffic, the smallest big feed) once finished on a lake between the poll and the
    # kill at +0.5 s: it is killed at its first write instead.
    full=[("load", 0, 0.2, False), ("load", 2, 0.0, True), ("load", 3, 0.0, True)],
)
KPI_KILLS = at_scale(
    ci=[("compute", -1, 0.0, True)],
    # +2 s missed at 2 days of data: compute had finished (both backends); +0.25 s instead.
    full=[("compute", -1, 0.5, False), ("compute", -1, 0.0, True), ("compute", -1, 0.25, False)],
)
BACKENDS = at_scale(ci=["file"], full=["file", "sqlite"])
DAYS = at_scale(ci=1, full=2)


def _not_held(path: Path) -> bool:
    """The flock on ``path`` is free (the killed process's lock went with it)."""
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _assert_killed_inside(kill: Kill, home: Home, dag_id: str, until_written: bool) -> None:
    if until_written and home.settings.warehouse_target.kind == "file":
        assert kill.writer_held, "killed outside the task's write"
    assert kill.still_running, (
        f"{kill.task}[{kill.map_index}] finished before the kill:\n{kill.output[-3000:]}"
    )
    # What the kill left: the locks are free (flock dies with its holder), the lock file stays.
    assert _not_held(run_lock_path(home.settings, dag_id, DAY))
    assert _not_held(db.lock_path(home.settings))


def _record_kill(figures: Figures, label: str, kill: Kill, rows: int) -> None:
    figures.add(
        f"{label}: killed {kill.task}[{kill.map_index}]",
        round(kill.after_s, 2),
        "s into the task",
        f"writer lock {'held' if kill.writer_held else 'free'}; {kill.wrote_bytes:,} warehouse"
        f" bytes written in the task; {rows:,} rows committed at the kill",
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_load_and_kpi_runs_rerun_to_identical_warehouse(
    backend: str, tmp_path: Path, figures: Figures
) -> None:
    a = Home(tmp_path / "a", WAREHOUSES[backend])
    a.home.mkdir()
    readings = land_city(a.home, DAY, DAYS)
    figures.add(
        "readings landed", readings, "readings", f"{DAYS} day(s), every catalogue site; {backend}"
    )

    # A: uninterrupted.
    a.run(INGEST, DAY)
    after_ingest = snapshot(a)
    a.run(KPIS, DAY)
    final = snapshot(a)
    assert final["kpi.pack_values"].num_rows > 0 and final["core.obs_air"].num_rows > 0

    tables = rows = diffs = 0
    for i, (ingest_kill, kpi_kill) in enumerate(zip(INGEST_KILLS, KPI_KILLS, strict=True)):
        b = Home(tmp_path / f"b{i}", WAREHOUSES[backend])
        b.home.mkdir()
        b.copy_landing_from(a)

        task, index, after_s, until_written = ingest_kill
        kill = kill_inside(
            b, INGEST, DAY, task, index, after_s=after_s, until_written=until_written
        )
        _assert_killed_inside(kill, b, INGEST, until_written)
        at_kill = b.committed_rows() if db.exists(b.settings) else 0
        _record_kill(figures, f"point {i + 1} ({FEEDS[index]})", kill, at_kill)
        assert at_kill < readings  # it was killed before all was loaded
        rerun_s = b.run(INGEST, DAY, timeout_s=300)
        figures.add(
            f"point {i + 1}: ingest rerun", rerun_s, "s", "after the kill; not refused, no hang"
        )
        d = compare(after_ingest, snapshot(b))
        assert not d.missing and not d.differences, [
            show_diff(after_ingest, snapshot(b), q) for q in d.differences
        ]
        tables, rows = tables + d.tables, rows + d.rows

        task, index, after_s, until_written = kpi_kill
        kill = kill_inside(b, KPIS, DAY, task, index, after_s=after_s, until_written=until_written)
        _assert_killed_inside(kill, b, KPIS, until_written)
        _record_kill(figures, f"point {i + 1}", kill, b.committed_rows(("kpi",)))
        rerun_s = b.run(KPIS, DAY, timeout_s=300)
        figures.add(f"point {i + 1}: KPI rerun", rerun_s, "s", "after the kill")
        got = snapshot(b)
        d = compare(final, got)
        assert not d.missing and not d.differences, [
            show_diff(final, got, q) for q in d.differences
        ]
        tables, rows, diffs = tables + d.tables, rows + d.rows, diffs + len(d.differences)
        # The killed run's parked batches stay (its run id is not the rerun's): the next
        # discover removes them once they are older than any live run's.
        left = [p for p in (b.home / "work" / "ingest").glob("*") if p.is_dir()]
        left_bytes = sum(f.stat().st_size for d in left for f in d.rglob("*") if f.is_file())
        figures.add(
            f"point {i + 1}: parked batches left by the kill",
            left_bytes,
            "bytes",
            f"{len(left)} run folder(s)",
        )
        old = time.time() - STALE_WORK_AGE_S - 60
        for f in [*left, *(f for d in left for f in d.rglob("*"))]:
            os.utime(f, (old, old))
        discover(b.settings, "after-kill-check")
        assert not [p for p in (b.home / "work" / "ingest").glob("*") if p.is_dir()]

    figures.add(
        "kill points",
        len(INGEST_KILLS) + len(KPI_KILLS),
        "",
        f"{len(INGEST_KILLS)} load, {len(KPI_KILLS)} KPI; {backend}",
    )
    figures.add("tables compared", tables, "tables", "core, dq, kpi, int, meta; after each rerun")
    figures.add("rows compared", rows, "rows", f"{len(EXCLUDED)} run-id/clock columns left out")
    figures.add("differences", diffs, "tables")


def _plant(folder: Path, good: Path) -> dict[str, Path]:
    """The four kinds of bad landing file, beside the good ones."""
    folder.mkdir(parents=True, exist_ok=True)
    planted = {
        k: folder / f"part-zz-{k}.parquet" for k in ("truncated", "empty", "random", "schema")
    }
    data = good.read_bytes()
    planted["truncated"].write_bytes(data[: len(data) // 2])
    planted["empty"].write_bytes(b"")
    planted["random"].write_bytes(random.Random(13).randbytes(4096))
    pq.write_table(pa.table({"sensor": ["x", "y"], "value": [1.0, 2.0]}), planted["schema"])
    return planted


@pytest.mark.slow
def test_corrupt_landing_files_are_quarantined_and_later_runs_load(
    tmp_path: Path, figures: Figures
) -> None:
    h = Home(tmp_path / "h")
    h.home.mkdir()
    first = DAY - timedelta(days=1)
    land_city(h.home, first, 1, files_per_day=2)
    air = h.home / "landing" / "air" / f"local_date={first.isoformat()}"
    planted = _plant(air, sorted(air.glob("part-*.parquet"))[0])
    # A second zero-byte file, in another feed: the same checksum as the first.
    empty_again = (
        h.home / "landing" / "traffic" / f"local_date={first.isoformat()}" / "part-zz-empty.parquet"
    )
    empty_again.write_bytes(b"")

    t0 = time.monotonic()
    h.run(INGEST, first)
    figures.add("ingest run with 5 corrupt files", time.monotonic() - t0, "s", "succeeded")
    with db.reader(h.settings) as con:
        rows = con.execute(
            "select source_file, feed, detail from dq.quarantine where reason = 'landing_file_unreadable'"
        ).fetchall()
        loaded_air = con.execute("select count(*) from core.obs_air").fetchone()[0]
    by_name = {Path(p).name + "/" + str(feed): detail for p, feed, detail in rows}
    assert len(rows) == 5, rows
    assert "ArrowInvalid" in by_name["part-zz-truncated.parquet/air"]
    assert "ArrowInvalid" in by_name["part-zz-empty.parquet/air"]  # "Parquet file size is 0 bytes"
    assert "ArrowInvalid" in by_name["part-zz-random.parquet/air"]
    assert (
        "KeyError" in by_name["part-zz-schema.parquet/air"]
        or "ArrowInvalid" in by_name["part-zz-schema.parquet/air"]
    )
    assert "part-zz-empty.parquet/traffic" in by_name
    # Recorded under the path it landed at, then moved aside out of the landing folder that the
    # staging views glob (the second empty file too: before the fix it stayed, unreported).
    aside = h.home / "unreadable" / "landing"
    for p in [*planted.values(), empty_again]:
        assert not p.exists()
        assert (aside / p.relative_to(h.home / "landing")).exists()
    assert {p for p, _, _ in rows} == {str(p) for p in [*planted.values(), empty_again]}
    assert loaded_air == 12 * 1440  # every good air reading loaded
    figures.add(
        "corrupt files planted", 5, "files", "truncated, empty (x2), random bytes, wrong schema"
    )
    figures.add(
        "corrupt files quarantined",
        len(rows),
        "files",
        "dq.quarantine reason landing_file_unreadable",
    )

    # Visible where the quality API reads it (serving/sql/select_quarantined.sql).
    with db.reader(h.settings) as con:
        api = SQL_SERVING(
            con,
            {
                "start_date": date(2000, 1, 1),
                "end_date": date(2100, 1, 1),
                "feed": None,
                "site_id": None,
                "reason": "landing_file_unreadable",
                "limit": 100,
                "offset": 0,
            },
        )
    assert len(api) == 5

    # The next run loads new data; the set-aside files do not come back.
    land_city(h.home, DAY, 1, files_per_day=2)
    (
        h.home / "landing" / "air" / f"local_date={DAY.isoformat()}" / "part-zz-empty.parquet"
    ).write_bytes(b"")
    h.run(INGEST, DAY)
    with db.reader(h.settings) as con:
        assert con.execute("select count(*) from core.obs_air").fetchone()[0] == 2 * 12 * 1440
        n = con.execute(
            "select count(*) from dq.quarantine where reason = 'landing_file_unreadable'"
        ).fetchone()[0]
    assert n == 6
    assert not (
        h.home / "landing" / "air" / f"local_date={DAY.isoformat()}" / "part-zz-empty.parquet"
    ).exists()
    figures.add(
        "next run after the corrupt files",
        12 * 1440,
        "air readings",
        "new day loaded; a 6th (empty) file quarantined",
    )


def SQL_SERVING(con: object, params: dict[str, object]) -> list[tuple[object, ...]]:
    from common.settings import REPO_ROOT

    sql = (REPO_ROOT / "serving" / "sql" / "select_quarantined.sql").read_text()
    return con.execute(sql, params).fetchall()  # type: ignore[attr-defined]


def test_copies_of_a_quarantined_file_are_quarantined_and_set_aside_too(settings: Settings) -> None:
    # In process (the ingest DAG's steps, no Airflow): the regression test of the fix in
    # warehouse/load.py and warehouse/quarantine.py. Two zero-byte files share one checksum:
    # the second was once skipped as "loaded before", stayed in landing unreported, and broke
    # the staging view over the folder.
    from support.serving_helpers import load as load_steps

    land_city(settings.home, DAY, 1, files_per_day=1)
    first = settings.landing_dir / "air" / f"local_date={DAY.isoformat()}" / "part-zz-empty.parquet"
    second = (
        settings.landing_dir / "traffic" / f"local_date={DAY.isoformat()}" / "part-zz-empty.parquet"
    )
    first.write_bytes(b"")
    load_steps(settings, "r1")
    second.write_bytes(b"")  # a batch of known checksums only: the loader's early return
    load_steps(settings, "r2")
    q_dir = settings.quarantine_dir / f"received_date={DAY.isoformat()}"
    q_dir.mkdir(parents=True)
    (q_dir / "part-zz-empty.parquet").write_bytes(b"")
    load_steps(settings, "r3")
    with db.reader(settings) as con:
        rows = con.execute(
            "select feed, source_file from dq.quarantine"
            " where reason = 'landing_file_unreadable' order by source_file"
        ).fetchall()
        assert con.execute("select count(*) from staging.landing_traffic").fetchone()[0] > 0
    assert sorted(rows, key=str) == sorted(
        [
            ("air", str(first)),
            ("traffic", str(second)),
            (None, str(q_dir / "part-zz-empty.parquet")),
        ],
        key=str,
    )
    assert not first.exists() and not second.exists()
    assert not (q_dir / "part-zz-empty.parquet").exists()
    load_steps(settings, "r4")  # set aside and ledgered: not found again
    with db.reader(settings) as con:
        assert con.execute("select count(*) from dq.quarantine").fetchone()[0] == 3


def test_lake_catalog_left_empty_by_a_killed_first_writer_is_not_taken_for_a_lake(
    tmp_path: Path,
) -> None:
    # Found by the full-scale kill on DuckLake/SQLite: the first run, killed between making the
    # empty catalog file and DuckLake's first attach, left a catalog that db.exists() took for a
    # lake; every reader then refused it and each later ingest run failed at discover.
    h = Home(tmp_path / "h", WAREHOUSES["sqlite"])
    target = h.settings.warehouse_target
    assert target.path is not None
    db._prepare_sqlite_catalog(target.path)  # what the killed writer had done
    assert target.path.exists() and not db.exists(h.settings)
    assert discover(h.settings, "r1")["files"]["air"] == []  # no crash: nothing landed yet
    with db.writer(h.settings):
        pass
    assert db.exists(h.settings)


def test_writer_killed_right_after_the_migrations_leaves_a_warehouse_that_opens(
    tmp_path: Path,
) -> None:
    # Found by the full-scale kill at load[0] of a first run: DuckDB 1.4 could not replay a WAL
    # holding the migrations' DDL ("INTERNAL Error: Failure while replaying WAL"), so every later
    # run failed. db.writer now checkpoints after migrating.
    import subprocess
    import sys

    h = Home(tmp_path / "h", WAREHOUSES["file"])
    script = (
        "import os, signal\n"
        "from common.settings import get_settings\n"
        "from warehouse import db\n"
        "with db.writer(get_settings()):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=h.env(), check=False)
    assert proc.returncode == -9
    with db.reader(h.settings) as con:
        assert con.execute("select count(*) from meta.schema_migrations").fetchone()[0] > 0
