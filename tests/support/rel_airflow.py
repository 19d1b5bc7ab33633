"""Killed Airflow runs and corrupt landing files (tests/reliability/test_rel_killed_tasks.py).

- ``land_city``: deterministic landing files for every catalogue site of every feed over some
  days (vectorized: hundreds of thousands of readings in a second), same names in every home.
- ``Home``: one citypipe data directory with its own warehouse; starts real ``citypipe run``
  processes in their own process group, so a SIGKILL takes the CLI, the Airflow runner and
  whatever it started at once (what the OOM killer or a node loss does).
- ``kill_inside``: waits until a task is running in the run's Airflow metadata (and, when
  asked, until the warehouse files grow: the task is writing), then kills the group.
- ``snapshot`` / ``compare``: every table of every warehouse schema, normalised (run ids and
  clocks out, the home's path replaced), compared row for row with EXCEPT ALL both ways.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.catalogue import FEEDS, load_catalogue
from common.settings import REPO_ROOT, Settings, get_settings
from common.sql import literal
from ingestion.schema import VALUE_COLUMNS, landing_schema
from warehouse import db

TZ = ZoneInfo("Asia/Shanghai")
SCHEMAS = ("core", "dq", "kpi", "int", "meta")

# Columns left out of the comparison, each because it differs between two runs by design:
EXCLUDED = {
    # the Airflow run id / ids made from it or from uuid4 (validate_feed's validation_run_id)
    "load_run_id": "the Airflow run id of the run that loaded the row",
    "validation_run_id": "run id + uuid4 suffix, new per validation",
    "run_id": "the run that computed the row",
    # wall clocks of the run itself, not of the data
    "loaded_at": "when the load committed",
    "computed_at": "when the KPI run computed the value",
    "started_at": "when a validation or KPI run started",
    "ended_at": "when it ended",
    "marked_at": "when a day was marked dirty",
    "updated_at": "when a row was last updated",
    "claimed_at": "when a loader claimed the feed (lake write conflicts)",
    "claimed_by": "the run id of the loader that claimed the feed last",
    "created_at": "when the row was created",
    "published_at": "when a value was published",
    "restated_at": "when a restatement was recorded",
    "first_seen_at": "when a path was first seen",
    "flagged_at": "when the load flagged the reading",
    "detected_at": "when the load detected a sequence gap",
    "first_marked_at": "when a day was first marked dirty",
    "last_marked_at": "when a day was last marked dirty",
    "kpi_computed_at": "when the KPI run took a dirty day",
    "dq_recorded_at": "when record_dq handled the batch",
    "dirty_marked_at": "when mark_dirty_days handled the batch",
    "seen_at": "when the ledger saw the path",
    "applied_at": "when a migration was applied",
    "finished_at": "when the KPI run finished",
    "data_until": "intraday: the run's now",
    "data_docs_url": "the Data Docs page, named after the validation run id",
    "statistics_json": "GX statistics: hold the validation's run time",
    "results_json": "GX results: hold the validation run id and run time",
}
# Tables left out whole: the open day's provisional values (transforms/intraday.py) are computed
# for today by the wall clock, as of the run's now: a run an hour later has another hour.
WALL_CLOCK_TABLES = ("kpi.intraday_",)
# Tables whose "reason" column is the run's own label ("citypipe_daily_kpis <run id>").
_REASON_TABLES = {"kpi.runs", "kpi.run_log", "kpi.restatements"}


def day_start_utc(day: date) -> datetime:
    return datetime.combine(day, dtime(0, 0), tzinfo=TZ).astimezone(UTC)


def land_city(home: Path, last_day: date, days: int, files_per_day: int = 4) -> int:
    """Landing files for every catalogue site of every feed, ``days`` local days up to
    ``last_day``; deterministic values and names. Returns the readings written."""
    catalogue = load_catalogue(REPO_ROOT / "reference", "wushan")
    total = 0
    for feed in FEEDS:
        schema = landing_schema(feed)
        for d in range(days):
            day = last_day - timedelta(days=days - 1 - d)
            start = day_start_utc(day)
            parts: list[pa.Table] = []
            for s_i, site in enumerate(catalogue.by_feed(feed)):
                n = 86_400 // site.period_s
                k = np.arange(n, dtype=np.int64)
                observed = np.datetime64(start.replace(tzinfo=None), "us") + (
                    k * site.period_s * 1_000_000
                ).astype("timedelta64[us]")
                wave = np.sin((k + s_i * 7 + d * 13) / 40.0)
                cols: dict[str, Any] = {
                    "site_id": [site.site_id] * n,
                    "device_id": [site.device_ids[0]] * n,
                    "lane": [1] * n if feed == "traffic" else [None] * n,
                    "direction": ["inbound"] * n if feed == "traffic" else [None] * n,
                    "seq": (k + 1 + d * n).astype(np.int64),
                    "observed_at": observed,
                    "period_s": [site.period_s] * n,
                    "flags": [""] * n,
                    "received_at": observed + np.timedelta64(5, "s"),
                    "topic": [f"city/wushan/{feed}/{site.site_id}"] * n,
                    "local_date": [day] * n,
                    "content_hash": [f"{feed}{s_i:03d}{d:02d}{i:06d}" for i in range(n)],
                }
                for j, col in enumerate(VALUE_COLUMNS[feed].values()):
                    base = _BASE[feed].get(col, 10.0)
                    v = base * (1.0 + 0.3 * wave * ((j % 3) + 1) / 3)
                    if col == "depth_cm":  # a few waterlogging episodes
                        v = np.where(wave > 0.9, 30.0 * (wave - 0.9) * 10, 0.0)
                    cols[col] = v
                t = pa.table({f.name: cols.get(f.name) for f in schema}, schema=schema)
                parts.append(t)
            table = pa.concat_tables(parts)
            folder = home / "landing" / feed / f"local_date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            step = -(-table.num_rows // files_per_day)
            for f_i in range(files_per_day):
                chunk = table.slice(f_i * step, step)
                if chunk.num_rows:
                    pq.write_table(chunk, folder / f"part-{day:%Y%m%d}-{f_i:03d}.parquet")
            total += table.num_rows
    return total


_BASE: dict[str, dict[str, float]] = {
    "air": {"pm25_ugm3": 35.0, "pm10_ugm3": 58.0, "so2_ugm3": 7.0, "no2_ugm3": 24.0,
            "co_mgm3": 0.7, "o3_ugm3": 61.0, "temp_c": 12.0, "rh_pct": 70.0, "wind_ms": 1.5,
            "wind_deg": 90.0, "pressure_hpa": 990.0},
    "water": {"water_temp_c": 15.0, "ph": 7.8, "do_mgl": 8.5, "codmn_mgl": 2.1, "nh3n_mgl": 0.2,
              "tp_mgl": 0.06, "tn_mgl": 1.2, "conductivity_uscm": 350.0, "turbidity_ntu": 12.0},
    "waterlogging": {"depth_cm": 0.0, "rain_mm": 1.0},
    "traffic": {"volume_veh": 40.0, "speed_kmh": 38.0, "occupancy_pct": 9.0},
}  # fmt: skip


@dataclass
class Home:
    """One citypipe data directory and its warehouse (``warehouse``: a CITYPIPE_WAREHOUSE value,
    relative paths under the home; None: the default DuckDB file)."""

    home: Path
    warehouse: str | None = None
    runs: list[str] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return get_settings(home=self.home, warehouse=self.warehouse)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPIPE_")}
        env["CITYPIPE_HOME"] = str(self.home)
        if self.warehouse:
            env["CITYPIPE_WAREHOUSE"] = self.warehouse
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        return env

    def start(self, dag_id: str, day: date) -> subprocess.Popen[str]:
        """``citypipe run DAG --date D`` in a new session (its own process group)."""
        return subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "run", dag_id, "--date", day.isoformat()],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, dag_id: str, day: date, timeout_s: float = 600) -> float:
        """One whole run; its seconds. Fails with the run's output when it fails."""
        t0 = time.monotonic()
        proc = self.start(dag_id, day)
        out, _ = proc.communicate(timeout=timeout_s)
        self.runs.append(out)
        assert proc.returncode == 0, f"{dag_id} {day} failed ({proc.returncode}):\n{out[-6000:]}"
        return time.monotonic() - t0

    def copy_landing_from(self, other: Home) -> None:
        shutil.copytree(other.home / "landing", self.home / "landing", copy_function=shutil.copy2)

    def warehouse_bytes(self) -> int:
        """Bytes of every file under the warehouse folder (DuckDB file + WAL, or the lake's
        catalog and data files): grows while a task writes."""
        total = 0
        for p in (self.home / "warehouse").rglob("*"):
            try:
                if p.is_file() and p.suffix != ".lock":
                    total += p.stat().st_size
            except FileNotFoundError:
                pass
        return total

    def writer_inside(self) -> bool:
        """A writer holds the warehouse lock (single file): db.exclusive_lock records itself in
        the lock file while held and empties it on release, so the writer's connection, with
        its open transaction, is live. A lake takes no lock: see ``warehouse_bytes``."""
        try:
            return db.lock_path(self.settings).stat().st_size > 0
        except FileNotFoundError:
            return False

    def task_states(self, dag_id: str, task_id: str) -> dict[int, str]:
        """map_index -> state of the task's instances in the latest run (Airflow metadata)."""
        path = self.settings.airflow_home / "airflow.db"
        if not path.exists():
            return {}
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            try:
                rows = con.execute(
                    "select map_index, coalesce(state, '') from task_instance"
                    " where dag_id = ? and task_id = ?",
                    (dag_id, task_id),
                ).fetchall()
            finally:
                con.close()
        except sqlite3.OperationalError:  # locked, or not migrated yet
            return {}
        return {int(m): str(s) for m, s in rows}

    def committed_rows(self, schemas: tuple[str, ...] = ("core",)) -> int:
        """Rows committed in the tables of ``schemas`` (read after a kill, before the rerun)."""
        with db.reader(self.settings) as con:
            total = 0
            for schema, name in tables(con, schemas):
                # Names from information_schema, quoted as identifiers (no bind for them).
                table = f"{_ident(schema)}.{_ident(name)}"
                total += int(con.execute(f"select count(*) from {table}").fetchone()[0])
            return total


@dataclass
class Kill:
    """Where a run was killed and what it had done by then."""

    task: str
    map_index: int
    after_s: float  # seconds after the task was seen running
    wrote_bytes: int  # warehouse bytes written since the task was seen running
    writer_held: bool  # the warehouse writer lock was held at the kill (single file)
    still_running: bool  # the task's state in Airflow after the kill: never finished
    output: str


def kill_inside(
    home: Home,
    dag_id: str,
    day: date,
    task: str,
    map_index: int,
    *,
    after_s: float,
    until_written: bool = False,
    timeout_s: float = 300,
) -> Kill:
    """Start the run, wait until ``task[map_index]`` runs for ``after_s`` (and, with
    ``until_written``, until it writes: it holds the warehouse writer lock on the single file,
    the lake's files grew on a lake), SIGKILL the run's process group."""
    proc = home.start(dag_id, day)
    deadline = time.monotonic() + timeout_s
    seen_at: float | None = None
    base = 0
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(
                f"the run ended before the kill point {task}[{map_index}]:\n{out[-4000:]}"
            )
        assert time.monotonic() < deadline, f"{task}[{map_index}] never ran"
        state = home.task_states(dag_id, task).get(map_index)
        if seen_at is not None and state != "running":
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{task}[{map_index}] ended ({state}) before the kill point")
        if seen_at is None and state == "running":
            seen_at, base = time.monotonic(), home.warehouse_bytes()
        if seen_at is not None and time.monotonic() - seen_at >= after_s:
            grown = home.warehouse_bytes() - base
            held = home.writer_inside()
            writing = held if home.settings.warehouse_target.kind == "file" else grown > 0
            if not until_written or writing:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    elapsed = time.monotonic() - seen_at
    proc.wait(timeout=30)
    out = proc.stdout.read() if proc.stdout else ""
    final = home.task_states(dag_id, task).get(map_index)
    return Kill(task, map_index, elapsed, grown, held, final == "running", out)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _ident(name: str) -> str:
    """A quoted SQL identifier: table and column names read from information_schema go into
    generated statements (identifiers cannot be bound parameters)."""
    return '"' + name.replace('"', '""') + '"'


def tables(
    con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = SCHEMAS
) -> list[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables"
        " where table_type = 'BASE TABLE' and table_schema in (select unnest(?))"
        " order by 1, 2",
        [list(schemas)],
    ).fetchall()
    return [(s, t) for s, t in rows]


def _columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[tuple[str, str]]:
    return [
        (c, t)
        for c, t in con.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
    ]


def excluded(qualified: str, column: str) -> bool:
    if column == "reason":  # elsewhere a data quality reason: compared
        return qualified in _REASON_TABLES
    return column in EXCLUDED


# Decimal digits past the 6th dropped inside text (see snapshot).
_DIGITS = r"'(\d\.\d{6})\d+', '\1', 'g'"


def snapshot(home: Home) -> dict[str, pa.Table]:
    """Every table of every warehouse schema, normalised for comparison between homes."""
    out: dict[str, pa.Table] = {}
    # A literal, not a bound parameter: tables without a text column would not use it.
    home_sql = literal(str(home.home))
    with db.reader(home.settings) as con:
        for schema, name in tables(con):
            q = f"{schema}.{name}"
            if q.startswith(WALL_CLOCK_TABLES):
                continue
            exprs = []
            for col, typ in _columns(con, schema, name):
                if excluded(q, col):
                    continue
                ident = _ident(col)
                # Floats to 6 decimals, also inside text (JSON details): the comparison is of
                # results, not of float noise (a double sum in another row order differs in the
                # 16th digit; traffic volume_veh was one until this suite found it).
                text = f"regexp_replace(replace({ident}::varchar, {home_sql}, '<home>'), {_DIGITS})"
                if (
                    typ in ("VARCHAR", "JSON")
                    or typ.endswith("[]")
                    or typ.startswith(("STRUCT", "MAP"))
                ):
                    exprs.append(f"{text} as {ident}")
                elif typ in ("DOUBLE", "FLOAT"):
                    exprs.append(f"round({ident}, 6) as {ident}")
                else:
                    exprs.append(ident)
            if not exprs:
                continue
            sql = f"select {', '.join(exprs)} from {_ident(schema)}.{_ident(name)}"
            out[q] = con.execute(sql).fetch_arrow_table()
    return out


@dataclass
class Diff:
    tables: int
    rows: int
    differences: dict[str, tuple[int, int]]  # table -> (only in A, only in B)
    missing: list[str]


def compare(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> Diff:
    """Row for row, as multisets: EXCEPT ALL both ways per table."""
    con = duckdb.connect()
    diffs: dict[str, tuple[int, int]] = {}
    rows = 0
    missing = sorted(set(a) ^ set(b))
    for q in sorted(set(a) & set(b)):
        con.register("ta", a[q])
        con.register("tb", b[q])
        only_a = con.execute("select count(*) from (from ta except all from tb)").fetchone()[0]
        only_b = con.execute("select count(*) from (from tb except all from ta)").fetchone()[0]
        con.unregister("ta")
        con.unregister("tb")
        rows += a[q].num_rows
        if only_a or only_b:
            diffs[q] = (int(only_a), int(only_b))
    con.close()
    return Diff(len(set(a) & set(b)), rows, diffs, missing)


def show_diff(a: dict[str, pa.Table], b: dict[str, pa.Table], q: str, n: int = 5) -> str:
    con = duckdb.connect()
    con.register("ta", a[q])
    con.register("tb", b[q])
    only_a = con.execute("from (from ta except all from tb) limit ?", [n]).fetchall()
    only_b = con.execute("from (from tb except all from ta) limit ?", [n]).fetchall()
    return f"{q}: columns {a[q].column_names}\n only A {only_a}\n only B {only_b}"
