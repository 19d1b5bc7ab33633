"""Writers and readers together on DuckLake (issue 10 item 3), with real processes.

Two loads of different feeds and a KPI run at once while 4 reader processes query without
pause: no read fails, every reading is stored once, and the KPIs equal a serial run of the
same landing files. Two overlapping loads of the SAME feed load every file once (the claim
row of migration 0011 makes the later commit conflict; its redo finds the files in the ledger).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.wh_factory import series, write_landing

from common.settings import REPO_ROOT, Settings, get_settings
from steps import ingest, kpis
from transforms.cli import read_pack
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.backends("sqlite", "postgres")]

# The days: D-1 is loaded first, then D's loads run while the KPI run computes D-1.
# D's readings start at 02:00 local, so nothing of D reaches a KPI of D-1 (an hourly mean of
# D-1 ends with the reading stamped D 00:00).
DAY_BEFORE = date(2026, 11, 20)
DAY = date(2026, 11, 21)
FEEDS = ("air", "water")
READERS = 4
STORED = {
    feed: f"select count(*), count(distinct (site_id, device_id, observed_at)) from core.obs_{feed}"
    for feed in FEEDS
}

# Each helper prints one line "RESULT<json>" on stdout; logs (the retries) go to stderr.
PRELUDE = """
import json, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
from common.settings import get_settings
settings = get_settings()
"""

LOAD = (
    PRELUDE
    + """
from steps import ingest
feed, run_id, barrier, peers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
found = ingest.discover(settings, run_id)
v = ingest.validate_feed(settings, feed, found["files"][feed], found["load_run_id"])
if barrier:  # every loader has validated its batch before any loads: their loads overlap
    Path(barrier, f"{run_id}.ready").touch()
    while len(list(Path(barrier).glob("*.ready"))) < peers:
        time.sleep(0.05)
out = ingest.load_feed(settings, v)
print("RESULT" + json.dumps({"feed": feed, "files": len(v["files"]), "loaded": out["loaded"],
                             "new": out["new"]}))
"""
)

KPI = (
    PRELUDE
    + """
from steps import kpis
plan = kpis.plan(settings, {"date": sys.argv[1]}, None)
result = kpis.compute(settings, plan, "concurrency")
print("RESULT" + json.dumps({"days": plan["days"], "n_values": result["n_values"]}))
"""
)

READ = (
    PRELUDE
    + """
from transforms.cli import read_pack
from warehouse import db
from datetime import date
stop, ready, day = Path(sys.argv[1]), Path(sys.argv[2]), date.fromisoformat(sys.argv[3])
ok, failed, errors = 0, 0, []
while not stop.exists():
    try:
        with db.reader(settings) as con:
            con.execute("select count(*), max(observed_at) from core.obs_air").fetchall()
            con.execute("select count(*), max(observed_at) from core.obs_water").fetchall()
        read_pack(settings, day)  # what `citypipe kpis` reads
        ok += 1
        ready.touch()
    except Exception as exc:
        failed += 1
        errors.append(f"{type(exc).__name__}: {exc}"[:300])
print("RESULT" + json.dumps({"ok": ok, "failed": failed, "errors": errors[:5]}))
"""
)


def _env() -> dict[str, str]:
    env = dict(os.environ)  # CITYPIPE_HOME and CITYPIPE_WAREHOUSE of the test's settings
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str], timeout_s: float = 900) -> tuple[dict[str, Any], str]:
    out, err = proc.communicate(timeout=timeout_s)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    assert proc.returncode == 0 and line, f"rc {proc.returncode}\n{out[-2000:]}\n{err[-4000:]}"
    return json.loads(line.removeprefix("RESULT")), err


def _retries(stderr: str) -> int:
    return sum(1 for ln in stderr.splitlines() if ": retry " in ln)


def _local(day: date, hour: int) -> datetime:
    # Shanghai is UTC+8 all year.
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def _write_day(home: Path, day: date, files_per_feed: int) -> dict[str, int]:
    """Landing files of ``day`` for air (1-minute) and water (4-hour) readings, several files
    per feed with disjoint times; returns the readings written per feed."""
    written = dict.fromkeys(FEEDS, 0)
    for i in range(files_per_feed):
        air = series("air", _local(day, 2 + 3 * i), 120)
        for j, r in enumerate(air):
            r.update(pm25_ugm3=20.0 + (j * 7 + i) % 40, no2_ugm3=15.0 + j % 11)
        write_landing(home, "air", air)
        water = series("water", _local(day, 2) + timedelta(minutes=10 * i), 4)
        for j, r in enumerate(water):
            r.update(do_mgl=6.0 + (i + j) % 4, nh3n_mgl=0.1 + 0.1 * ((i * 3 + j) % 5))
        write_landing(home, "water", water)
        written["air"] += len(air)
        written["water"] += len(water)
    return written


def _load_all(settings: Settings, run_id: str) -> None:
    found = ingest.discover(settings, run_id)
    for feed in FEEDS:
        v = ingest.validate_feed(settings, feed, found["files"][feed], found["load_run_id"])
        ingest.load_feed(settings, v)


def _kpi(settings: Settings, day: date) -> None:
    plan = kpis.plan(settings, {"date": day.isoformat()}, None)
    kpis.compute(settings, plan, "concurrency")


def _pack(settings: Settings) -> list[dict[str, Any]]:
    out = []
    for day in (DAY_BEFORE, DAY):
        for item in read_pack(settings, day):
            out.append({k: v for k, v in item.items() if k != "computed_at"} | {"day": str(day)})
    return out


def _stored(settings: Settings, feed: str) -> tuple[int, int]:
    """Readings stored, and distinct natural keys (series key and observed_at)."""
    with db.reader(settings) as con:
        row = con.execute(STORED[feed]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_two_loads_and_a_kpi_run_while_four_readers_query(
    settings: Settings, tmp_path: Path, warehouse_kind: str
) -> None:
    written = _write_day(settings.home, DAY_BEFORE, 2)
    _load_all(settings, "setup")
    more = _write_day(settings.home, DAY, 3)
    written = {f: written[f] + more[f] for f in FEEDS}

    stop = tmp_path / "stop"
    readers = [
        _start(READ, str(stop), str(tmp_path / f"reader{i}.ready"), DAY_BEFORE.isoformat())
        for i in range(READERS)
    ]
    deadline = time.monotonic() + 300
    while not all((tmp_path / f"reader{i}.ready").exists() for i in range(READERS)):
        assert time.monotonic() < deadline, "a reader never completed a read"
        assert all(r.poll() is None for r in readers), "a reader died"
        time.sleep(0.2)

    writers = [_start(LOAD, feed, f"load-{feed}", "", "0") for feed in FEEDS]
    writers.append(_start(KPI, DAY_BEFORE.isoformat()))
    results = [_result(w) for w in writers]
    stop.touch()
    reads = [_result(r, 300)[0] for r in readers]

    retries = sum(_retries(err) for _, err in results)
    print(f"{warehouse_kind}: writer retries {retries}; reads {[r['ok'] for r in reads]}")
    assert [r["failed"] for r in reads] == [0] * READERS, reads
    assert all(r["ok"] > 0 for r in reads)
    loads = [res for res, _ in results[:2]]
    assert all(res["loaded"] and res["files"] == 3 for res in loads), loads
    assert results[2][0]["days"] == [DAY_BEFORE.isoformat()]

    # Every reading exactly once, every file once in the ledger.
    for feed in FEEDS:
        assert _stored(settings, feed) == (written[feed], written[feed]), feed
    with db.reader(settings) as con:
        ledger = con.execute("select count(*), count(distinct sha256) from meta.load_ledger")
        assert ledger.fetchone() == (10, 10)

    # The KPIs equal those of a serial run of the same files, in the same order, on a fresh
    # warehouse of the kind: D-1's files loaded, D-1 computed, D's files loaded, D computed.
    _kpi(settings, DAY)
    serial = _serial_settings(settings, tmp_path / "serial")
    _copy_landing(settings, serial, DAY_BEFORE)
    _load_all(serial, "serial-before")
    _kpi(serial, DAY_BEFORE)
    _copy_landing(settings, serial, DAY)
    _load_all(serial, "serial-day")
    _kpi(serial, DAY)
    pack, expected = _pack(settings), _pack(serial)
    assert pack, "no KPI computed"
    assert [p for p in pack if p not in expected] == [], expected
    assert pack == expected


def _serial_settings(settings: Settings, home: Path) -> Settings:
    """A fresh warehouse of the same kind in ``home``."""
    url = settings.warehouse or ""
    if "metadata_schema=" in url:  # PostgreSQL: another catalog schema in the same database
        url = url.replace("metadata_schema=", "metadata_schema=serial_")
    return get_settings(home=home, warehouse=url or None)


def _copy_landing(settings: Settings, to: Settings, day: date) -> None:
    """Copy the landing files of one local day (same bytes, same names) to another home."""
    for feed in FEEDS:
        part = f"local_date={day.isoformat()}"
        shutil.copytree(settings.landing_dir / feed / part, to.landing_dir / feed / part)


def test_two_overlapping_loads_of_one_feed_load_every_file_once(settings: Settings) -> None:
    files = 4
    rows = 0
    for i in range(files):
        air = series("air", _local(DAY, 2 + 3 * i), 90)
        write_landing(settings.home, "air", air)
        rows += len(air)
    with db.writer(settings):
        pass  # create and migrate the warehouse before the race (as any earlier run would)
    barrier = settings.home / "barrier"
    barrier.mkdir()
    procs = [_start(LOAD, "air", f"run{i}", str(barrier), "2") for i in range(2)]
    results = [_result(p) for p in procs]

    outs = [res for res, _ in results]
    print(f"same-feed loads: retries {[_retries(err) for _, err in results]}")
    assert [o["files"] for o in outs] == [files, files], outs
    # One of them loaded the files; the other one's commit conflicted, and its redo found every
    # file in the ledger.
    assert sorted(o["loaded"] for o in outs) == [False, True], outs
    assert _stored(settings, "air") == (rows, rows)
    with db.reader(settings) as con:
        assert con.execute(
            "select count(*), count(distinct sha256) from meta.load_ledger"
        ).fetchone() == (files, files)
        assert con.execute("select sum(files) from dq.batch_counts").fetchone() == (files,)
        assert con.execute("select count(*) from meta.load_batches").fetchone() == (1,)
        # both transactions committed in the end, one after the other
        assert con.execute("select claims from meta.claim_load_air").fetchone() == (2,)
