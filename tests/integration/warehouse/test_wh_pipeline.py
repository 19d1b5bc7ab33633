"""The load chain on real DuckDB files: ledger, revisions, interruption, dirty days, quarantine."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.wh_factory import reading, series, write_landing

from common.settings import Settings, get_settings
from ingestion.schema import QUARANTINE_SCHEMA
from steps.ingest import load_feed, validate_feed
from warehouse import db
from warehouse.followups import mark_dirty_days, record_dq
from warehouse.ledger import discover_new_files
from warehouse.load import InjectedFailure
from warehouse.quarantine import load_quarantine

# The whole load chain on the single file and on DuckLake-on-PostgreSQL (issue 10).
pytestmark = [pytest.mark.integration, pytest.mark.backends("file", "postgres")]

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 2026-11-21 00:00 in Shanghai


def _varied(feed: str, start: datetime, n: int, **kw: Any) -> list[dict[str, Any]]:
    rows = series(feed, start, n, **kw)
    for i, r in enumerate(rows):
        if feed == "air":
            r.update(
                pm25_ugm3=30.0 + i % 9,
                pm10_ugm3=60.0 + i % 5,
                no2_ugm3=20.0 + i % 4,
                o3_ugm3=50.0 + i % 6,
            )
        elif feed == "traffic":
            r.update(speed_kmh=30.0 + i % 8)
    return rows


def run_all(settings: Settings, run_id: str, *, fail_feed: str | None = None) -> dict[str, Any]:
    found = discover_new_files(settings)
    loaded = {}
    for feed in ("air", "water", "waterlogging", "traffic"):
        s = validate_feed(settings, feed, found[feed], run_id)
        loaded[feed] = load_feed(settings, s, fail_before_commit=(feed == fail_feed))
    loaded["quarantine"] = load_quarantine(settings, found["quarantine"], run_id)
    record_dq(settings)
    mark_dirty_days(settings)
    return loaded


def q(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with db.reader(settings) as con:
        return con.execute(sql, params).fetchall()


def counts(settings: Settings) -> dict[str, int]:
    tables = [
        "core.obs_air",
        "core.obs_traffic",
        "dq.flagged_readings",
        "dq.quarantine",
        "meta.load_ledger",
        "dq.validation_runs",
    ]
    return {t: q(settings, f"select count(*) from {t}")[0][0] for t in tables}


def test_load_flags_and_is_valid_agree(settings: Settings) -> None:
    rows = _varied("air", START, 120)
    rows[3]["pm25_ugm3"] = -1.0
    rows[4]["flags"] = "calibration"
    write_landing(settings.home, "air", rows)
    write_landing(settings.home, "traffic", _varied("traffic", START, 40, lane=2))
    out = run_all(settings, "r1")
    assert out["air"]["new"] == 120 and out["air"]["flagged"] == 2
    invalid = {
        seq: rest
        for seq, *rest in q(
            settings,
            "select seq, failed_expectations, is_valid, invalid_columns from core.obs_air "
            "where failed_expectations <> ''",
        )
    }
    # validity per value: out-of-range PM2.5 invalidates that value; a device flag the reading
    assert invalid == {
        4: ["pm25_ugm3_in_range", True, ["pm25_ugm3"]],
        5: ["device_flag:calibration", False, None],
    }
    flagged = q(
        settings,
        "select expectation, observed_value from dq.flagged_readings where feed='air' order by 1",
    )
    assert flagged == [("device_flag:calibration", None), ("pm25_ugm3_in_range", -1.0)]
    lanes = q(settings, "select distinct lane from core.obs_traffic")
    assert lanes == [(2,)]
    vr = q(
        settings,
        "select feed, rows, evaluated_expectations > 10, results_json from dq.validation_runs order by feed",
    )
    assert [r[:3] for r in vr] == [("air", 120, True), ("traffic", 40, True)]
    # traffic: every reading fine; only the batch-level checks see the other, silent detectors,
    # the missing lanes 1 and 3 (completeness) and the age of the data (freshness vs now).
    failed = [r["name"] for r in json.loads(vr[1][3]) if not r["success"]]
    assert failed == ["sites_reporting", "site_completeness", "site_freshness"]
    bc = q(
        settings,
        "select feed, rows_read, accepted_valid, flagged from dq.batch_counts order by feed",
    )
    assert bc == [("air", 120, 118, 2), ("traffic", 40, 40, 0)]
    partly = q(settings, "select feed, partly_valid from dq.batch_counts order by feed")
    assert partly == [("air", 1), ("traffic", 0)]
    # Which rules each run used: a sha256 per feed's suite.
    versions = q(settings, "select feed, suite_version from dq.validation_runs order by feed")
    assert [f for f, v in versions if v and len(v) == 64] == ["air", "traffic"]
    assert versions[0][1] != versions[1][1]


def test_rerun_loads_nothing_twice(settings: Settings) -> None:
    paths = write_landing(settings.home, "air", _varied("air", START, 60))
    run_all(settings, "r1")
    before = counts(settings)
    assert discover_new_files(settings)["air"] == []
    run_all(settings, "r2")
    # The same bytes under another name: skipped by checksum, not by path.
    copy = paths[0].with_name("part-copy.parquet")
    shutil.copy(paths[0], copy)
    assert discover_new_files(settings)["air"] == [str(copy)]
    out = run_all(settings, "r3")
    assert out["air"]["loaded"] is False
    assert counts(settings) == before
    # The copy's path is remembered: never discovered (re-hashed, re-validated) again.
    assert discover_new_files(settings)["air"] == []
    # A touched file (same bytes, new mtime) is discovered once more, then never again.
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    assert discover_new_files(settings)["air"] == [str(paths[0])]
    run_all(settings, "r4")
    assert discover_new_files(settings)["air"] == []
    assert counts(settings) == before


def test_copied_quarantine_file_is_discovered_once(settings: Settings) -> None:
    src = _quarantine_file(settings.home, 2)
    run_all(settings, "r1")
    copy = src.with_name("part-copy.parquet")
    shutil.copy(src, copy)
    assert discover_new_files(settings)["quarantine"] == [str(copy)]
    run_all(settings, "r2")
    assert discover_new_files(settings)["quarantine"] == []
    assert q(settings, "select count(*) from dq.quarantine") == [(3,)]


def test_redelivered_and_revised_readings(settings: Settings) -> None:
    rows = _varied("air", START, 30)
    write_landing(settings.home, "air", rows)
    run_all(settings, "r1")
    later = START + timedelta(hours=1)
    dup = dict(rows[5])  # exact re-delivery: same content hash
    rev = dict(rows[6], pm25_ugm3=77.0, content_hash="revised", received_at=later)
    stale = dict(
        rows[7], pm25_ugm3=1.0, content_hash="older", received_at=START - timedelta(hours=1)
    )
    write_landing(settings.home, "air", [dup, rev, stale])
    out = run_all(settings, "r2")
    assert (
        out["air"]["new"],
        out["air"]["revision"],
        out["air"]["duplicate"],
        out["air"]["stale"],
    ) == (0, 1, 1, 1)
    assert q(settings, "select count(*) from core.obs_air") == [(30,)]
    assert q(settings, "select pm25_ugm3 from core.obs_air where seq = 7") == [(77.0,)]
    assert q(settings, "select pm25_ugm3 from core.obs_air where seq = 8") == [
        (rows[7]["pm25_ugm3"],)
    ]
    bc = q(
        settings, "select duplicates_dropped, revisions from dq.batch_counts where load_run_id='r2'"
    )
    assert bc == [(2, 1)]


def test_revisions_inside_one_batch_count_as_revisions(settings: Settings) -> None:
    # Issue 7 finding 8: three versions of one key in a batch (plus an exact re-delivery)
    # were all counted as duplicates in dq.batch_counts.
    rows = _varied("air", START, 4)
    later = START + timedelta(hours=1)
    v2 = dict(rows[1], pm25_ugm3=50.0, content_hash="v2", received_at=later)
    v3 = dict(rows[1], pm25_ugm3=51.0, content_hash="v3", received_at=later + timedelta(minutes=1))
    again = dict(v3, received_at=later + timedelta(minutes=2))  # same hash: a re-delivery
    write_landing(settings.home, "air", [*rows, v2, v3, again])
    run_all(settings, "r1")
    bc = q(
        settings,
        "select rows_read, duplicates_dropped, revisions from dq.batch_counts"
        " where load_run_id = 'r1' and feed = 'air'",
    )
    assert bc == [(7, 1, 2)]
    assert q(settings, "select pm25_ugm3 from core.obs_air where seq = 2") == [(51.0,)]


def test_revision_replaces_flags_of_the_old_version(settings: Settings) -> None:
    rows = _varied("air", START, 10)
    rows[2]["pm25_ugm3"] = -5.0
    write_landing(settings.home, "air", rows)
    run_all(settings, "r1")
    fixed = dict(
        rows[2], pm25_ugm3=33.0, content_hash="fixed", received_at=START + timedelta(hours=2)
    )
    write_landing(settings.home, "air", [fixed])
    run_all(settings, "r2")
    assert q(settings, "select count(*) from dq.flagged_readings") == [(0,)]
    assert q(settings, "select is_valid from core.obs_air where seq = 3") == [(True,)]


def test_interrupted_load_leaves_no_partial_rows(settings: Settings) -> None:
    write_landing(settings.home, "air", _varied("air", START, 50))
    write_landing(settings.home, "traffic", _varied("traffic", START, 20))
    with pytest.raises(InjectedFailure):
        run_all(settings, "r1", fail_feed="traffic")
    # air committed before; traffic rolled back entirely (rows, flags, dq, ledger).
    assert q(settings, "select count(*) from core.obs_traffic") == [(0,)]
    assert q(settings, "select count(*) from meta.load_ledger where feed = 'traffic'") == [(0,)]
    assert q(settings, "select count(*) from dq.validation_runs where feed = 'traffic'") == [(0,)]
    assert q(settings, "select count(*) from dq.batch_counts where feed = 'traffic'") == [(0,)]
    assert q(settings, "select count(*) from core.obs_air") == [(50,)]
    run_all(settings, "r2")  # the retry
    assert q(settings, "select count(*) from core.obs_traffic") == [(20,)]
    assert q(settings, "select count(*) from core.obs_air") == [(50,)]


def test_late_file_for_an_older_day_marks_it_dirty(settings: Settings) -> None:
    write_landing(settings.home, "air", _varied("air", START, 60))
    run_all(settings, "r1")
    assert q(settings, "select local_date::varchar from core.dirty_days") == [("2026-11-21",)]
    # The KPI DAG consumed it.
    with db.writer(settings) as con:
        con.execute("update core.dirty_days set kpi_computed_at = now()")
    late = _varied("air", START - timedelta(days=3), 30)
    write_landing(settings.home, "air", late)
    run_all(settings, "r2")
    pending = q(
        settings,
        "select feed, local_date::varchar from core.dirty_days "
        "where kpi_computed_at is null or kpi_computed_at < last_marked_at",
    )
    assert pending == [("air", "2026-11-18")]
    assert mark_dirty_days(settings) == [("air", "2026-11-18")]


def test_revision_re_marks_a_computed_day(settings: Settings) -> None:
    rows = _varied("air", START, 10)
    write_landing(settings.home, "air", rows)
    run_all(settings, "r1")
    with db.writer(settings) as con:
        con.execute("update core.dirty_days set kpi_computed_at = now()")
    write_landing(
        settings.home,
        "air",
        [dict(rows[1], pm25_ugm3=55.0, content_hash="x", received_at=START + timedelta(hours=3))],
    )
    run_all(settings, "r2")
    assert q(settings, "select kpi_computed_at is null from core.dirty_days") == [(True,)]


def test_exact_redelivery_does_not_mark_dirty(settings: Settings) -> None:
    rows = _varied("air", START, 10)
    write_landing(settings.home, "air", rows)
    run_all(settings, "r1")
    with db.writer(settings) as con:
        con.execute("update core.dirty_days set kpi_computed_at = now()")
    write_landing(settings.home, "air", [dict(rows[1])])
    run_all(settings, "r2")
    assert q(settings, "select kpi_computed_at is null from core.dirty_days") == [(False,)]


def test_site_day_completeness(settings: Settings) -> None:
    rows = _varied("air", START, 720)  # 12 h of minute data on 2026-11-21 (local)
    rows[0]["flags"] = "power_fail"
    write_landing(settings.home, "air", rows)
    run_all(settings, "r1")
    got = q(
        settings,
        "select expected_readings, received_readings, valid_readings, completeness_pct, "
        "last_observed_at from dq.site_day_completeness where site_id = 'WS-AIR-01'",
    )
    assert got == [(1440, 720, 719, 50.0, START + timedelta(minutes=719))]
    silent = q(
        settings,
        "select count(*) from dq.site_day_completeness "
        "where feed = 'air' and received_readings = 0",
    )
    assert silent == [(11,)]  # the other air sites of the catalogue


def _quarantine_file(home: Path, n: int) -> Path:
    now = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    rows = [
        {
            "received_at": now,
            "topic": "city/wushan/air/WS-AIR-01",
            "feed": "air",
            "site_id": "WS-AIR-01",
            "reason": "bad_json",
            "detail": "Expecting value: line 1",
            "reading_index": None,
            "payload": b"{not json" + b"\xff" * i,
            "payload_bytes": 9 + i,
            "received_date": now.date(),
        }
        for i in range(n)
    ] + [
        {
            "received_at": now,
            "topic": "city/wushan/bogus",
            "feed": None,
            "site_id": None,
            "reason": "bad_topic",
            "detail": "topic has 3 levels",
            "reading_index": None,
            "payload": b"{}",
            "payload_bytes": 2,
            "received_date": now.date(),
        }
    ]
    d = home / "quarantine" / "received_date=2026-11-21"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "part-20261121T020000Z-abc.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), path)
    return path


def test_quarantine_is_loaded_once_with_reasons(settings: Settings) -> None:
    _quarantine_file(settings.home, 3)
    run_all(settings, "r1")
    got = q(
        settings,
        "select coalesce(feed, '?'), reason, count(*) from dq.quarantine group by all order by 1",
    )
    assert got == [("?", "bad_topic", 1), ("air", "bad_json", 3)]
    excerpt = q(
        settings,
        "select payload_excerpt from dq.quarantine where reason='bad_json' and payload_bytes = 9",
    )
    assert excerpt == [("{not json",)]
    bc = q(settings, "select feed, quarantined from dq.batch_counts order by feed")
    assert bc == [("air", 3), ("unknown", 1)]
    run_all(settings, "r2")
    assert q(settings, "select count(*) from dq.quarantine") == [(4,)]


def test_unreadable_landing_file_is_quarantined_not_fatal(settings: Settings) -> None:
    write_landing(settings.home, "air", _varied("air", START, 5))
    bad = settings.landing_dir / "air" / "local_date=2026-11-21" / "part-zzzz-broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    run_all(settings, "r1")
    assert q(settings, "select count(*) from core.obs_air") == [(5,)]
    assert q(settings, "select reason, source_file from dq.quarantine") == [
        ("landing_file_unreadable", str(bad))
    ]
    assert discover_new_files(settings)["air"] == []
    # Set aside once quarantined: the staging view that globs the landing folder works again.
    assert not bad.exists()
    assert (
        settings.home / "unreadable" / "landing" / "air" / "local_date=2026-11-21" / bad.name
    ).exists()
    assert q(settings, "select count(*) from staging.landing_air") == [(5,)]
    run_all(settings, "r2")  # its new path is in the ledger: not discovered, not counted twice
    assert q(settings, "select count(*) from dq.quarantine") == [(1,)]


def test_file_set_aside_by_ingest_is_quarantined_by_the_load(settings: Settings) -> None:
    # ingest moves an unreadable landing file to unreadable/ (ingestion.dedupe); the load must
    # still record it, or the environmental staff would never hear of it.
    write_landing(settings.home, "air", _varied("air", START, 5))
    aside = settings.home / "unreadable" / "landing" / "air" / "local_date=2026-11-21"
    aside.mkdir(parents=True)
    (aside / "part-truncated.parquet").write_bytes(b"PAR1\x00\x01 truncated")
    run_all(settings, "r1")
    assert q(settings, "select reason, source_file from dq.quarantine") == [
        ("landing_file_unreadable", str(aside / "part-truncated.parquet"))
    ]
    run_all(settings, "r2")
    assert q(settings, "select count(*) from dq.quarantine") == [(1,)]


def test_reading_in_year_one_does_not_stop_the_load(settings: Settings) -> None:
    # Landed before the contract's too_old bound (or written by hand): the history look-back
    # once raised OverflowError here and stopped every feed's load, run after run.
    rows = _varied("air", START, 5)
    old = reading("air", datetime(1, 1, 1, 0, 30, tzinfo=UTC), seq=99)
    write_landing(settings.home, "air", [*rows, old])
    loaded = run_all(settings, "r1")
    assert loaded["air"]["loaded"]
    assert q(settings, "select count(*) from core.obs_air") == [(6,)]


def test_history_from_warehouse_feeds_flat_line(settings: Settings) -> None:
    rows = [
        reading(
            "air",
            START + timedelta(minutes=i),
            seq=i + 1,
            pm25_ugm3=41.0,
            pm10_ugm3=60.0 + i % 5,
            no2_ugm3=20.0 + i % 4,
            o3_ugm3=50.0 + i % 6,
        )
        for i in range(150)
    ]
    write_landing(settings.home, "air", rows[:100])
    run_all(settings, "r1")
    write_landing(settings.home, "air", rows[100:])
    run_all(settings, "r2")
    got = q(
        settings,
        "select min(seq), count(*) from dq.flagged_readings join core.obs_air using "
        "(site_id, device_id, observed_at) where expectation = 'flatline_pm25_ugm3'",
    )
    assert got == [(120, 31)]


def test_staging_views_read_landing_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A quote in the data directory must not break (or inject into) the view DDL.
    home = tmp_path / "o'brien; drop schema core"
    home.mkdir()
    monkeypatch.setenv("CITYPIPE_HOME", str(home))
    settings = get_settings()
    write_landing(settings.home, "air", _varied("air", START, 12))
    write_landing(settings.home, "air", _varied("air", START + timedelta(days=1), 5))
    _quarantine_file(settings.home, 2)
    run_all(settings, "r1")
    assert q(settings, "select count(*) from staging.landing_air") == [(17,)]
    assert q(settings, "select count(distinct local_date) from staging.landing_air") == [(2,)]
    assert q(settings, "select count(*) from staging.quarantine") == [(3,)]
    # A feed without landing files is an empty view with the landing columns, not an error.
    assert q(settings, "select count(*), count(speed_kmh) from staging.landing_traffic") == [(0, 0)]
