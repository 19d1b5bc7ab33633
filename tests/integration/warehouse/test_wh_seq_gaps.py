"""dq.seq_gaps on real DuckDB files: the contract's per-device seq checked by the load.

Every test here fails on the code before dq.seq_gaps existed (the table is missing).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from support.wh_factory import SHANGHAI, reading, table, write_landing

from common.settings import Settings
from steps.ingest import load_feed, validate_feed
from warehouse import db
from warehouse.ledger import discover_new_files
from warehouse.seq_gaps import NEAR_LOOKBACK, record_seq_anomalies

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 2026-11-21 00:00 in Shanghai
COLS = (
    "kind, seq_before, seq_after, seq_from, seq_to, missing_count, "
    "observed_at_before, observed_at_after, load_run_id"
)


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def air(seqs_by_minute: dict[int, int], **kw: Any) -> list[dict[str, Any]]:
    """Air readings of one device: {minute after START: seq}, values varied (no flat-line)."""
    return [
        reading("air", at(m), seq=s, pm25_ugm3=30.0 + m % 7, pm10_ugm3=60.0 + m % 5, **kw)
        for m, s in sorted(seqs_by_minute.items())
    ]


def load(settings: Settings, run_id: str) -> dict[str, Any]:
    """The ingest DAG's discover -> validate -> load steps, every feed."""
    found = discover_new_files(settings)
    out = {}
    for feed in ("air", "water", "waterlogging", "traffic"):
        s = validate_feed(settings, feed, found[feed], run_id)
        out[feed] = load_feed(settings, s)
    return out


def gaps(settings: Settings, where: str = "true") -> list[tuple[Any, ...]]:
    with db.reader(settings) as con:
        return con.execute(
            f"select {COLS} from dq.seq_gaps where {where} order by observed_at_after, kind"
        ).fetchall()


def test_gap_of_three_is_recorded_with_missing_count_3(settings: Settings) -> None:
    # seq 11, 12, 13 lost upstream (minutes 10-12 never arrived)
    write_landing(settings.home, "air", air({m: m + 1 for m in [*range(10), *range(13, 20)]}))
    load(settings, "r1")
    assert gaps(settings) == [("gap", 10, 14, 11, 13, 3, at(9), at(13), "r1")]
    with db.reader(settings) as con:
        row = con.execute(
            "select feed, site_id, device_id, lane_before, lane_after, local_date::varchar, "
            "validation_run_id like 'r1-air-%' from dq.seq_gaps"
        ).fetchall()
    assert row == [("air", "WS-AIR-01", "AQM-0101", None, None, "2026-11-21", True)]


def test_seq_gap_without_a_time_gap_is_still_a_gap(settings: Settings) -> None:
    # observed_at is continuous but seq jumps: readings were lost between the device and us
    # while the device kept counting (or the time of the lost ones was reused): still loss.
    write_landing(settings.home, "air", air({0: 1, 1: 2, 2: 5, 3: 6}))
    load(settings, "r1")
    assert gaps(settings) == [("gap", 2, 5, 3, 4, 2, at(1), at(2), "r1")]


def test_gap_across_two_batches(settings: Settings) -> None:
    write_landing(settings.home, "air", air({m: m + 1 for m in range(10)}))
    load(settings, "r1")
    assert gaps(settings) == []
    # next batch starts at seq 15: 11..14 lost between the two batches
    write_landing(settings.home, "air", air({m: m + 5 for m in range(10, 20)}))
    load(settings, "r2")
    assert gaps(settings) == [("gap", 10, 15, 11, 14, 4, at(9), at(10), "r2")]


def test_gap_across_a_long_silence_is_found_past_the_near_look_back(settings: Settings) -> None:
    write_landing(settings.home, "air", air({m: m + 1 for m in range(5)}))
    load(settings, "r1")
    later = 5 * 24 * 60  # five days on: beyond NEAR_LOOKBACK, the full look-back finds seq 5
    assert timedelta(minutes=later) > NEAR_LOOKBACK
    write_landing(settings.home, "air", air({later: 7200, later + 1: 7201}))
    load(settings, "r2")
    assert gaps(settings) == [("gap", 5, 7200, 6, 7199, 7194, at(4), at(later), "r2")]


def test_late_batch_filling_the_gap_removes_it(settings: Settings) -> None:
    # seq 6, 7, 8 (minutes 5-7) arrive late, in two batches
    write_landing(settings.home, "air", air({m: m + 1 for m in [*range(5), *range(8, 12)]}))
    load(settings, "r1")
    assert gaps(settings) == [("gap", 5, 9, 6, 8, 3, at(4), at(8), "r1")]
    write_landing(settings.home, "air", air({5: 6, 6: 7}))
    load(settings, "r2")
    # the gap shrank to seq 8: the old row is gone, the rest is a new finding of r2
    assert gaps(settings) == [("gap", 7, 9, 8, 8, 1, at(6), at(8), "r2")]
    write_landing(settings.home, "air", air({7: 8}))
    load(settings, "r3")
    assert gaps(settings) == []


def test_late_reading_in_the_middle_of_an_old_gap_splits_it(settings: Settings) -> None:
    write_landing(settings.home, "air", air({0: 1, 10: 11}))
    load(settings, "r1")
    assert gaps(settings) == [("gap", 1, 11, 2, 10, 9, at(0), at(10), "r1")]
    write_landing(settings.home, "air", air({5: 6}))
    load(settings, "r2")
    assert gaps(settings) == [
        ("gap", 1, 6, 2, 5, 4, at(0), at(5), "r2"),
        ("gap", 6, 11, 7, 10, 4, at(5), at(10), "r2"),
    ]


def test_reset_and_repeat_are_recorded_not_counted_as_loss(settings: Settings) -> None:
    # 1 2 3 | reboot: 1 2 | the same seq 3 twice at two times | 4
    write_landing(settings.home, "air", air({0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3, 6: 3, 7: 4}))
    load(settings, "r1")
    assert gaps(settings) == [
        ("reset", 3, 1, None, None, 0, at(2), at(3), "r1"),
        ("repeat", 3, 3, None, None, 0, at(5), at(6), "r1"),
    ]


def test_devices_are_separate_series(settings: Settings) -> None:
    # two stations in one batch, each with its own counter: no anomaly across them
    rows = air({m: 100 + m for m in range(5)}) + air(
        {m: 1 + m for m in range(5)}, site_id="WS-AIR-02", device_id="AQM-0201"
    )
    rows[-1]["seq"] = 9  # only WS-AIR-02 lost seq 5..8
    write_landing(settings.home, "air", rows)
    load(settings, "r1")
    with db.reader(settings) as con:
        got = con.execute("select site_id, device_id, seq_from, seq_to from dq.seq_gaps").fetchall()
    assert got == [("WS-AIR-02", "AQM-0201", 5, 8)]


def test_traffic_lanes_share_the_detector_counter(settings: Settings) -> None:
    # one detector, 3 lanes, one counter: lanes 1..3 at each 5 minutes take seq n, n+1, n+2
    rows = [
        reading("traffic", START + timedelta(minutes=5 * t), lane=lane, seq=3 * t + lane)
        for t in range(4)
        for lane in (1, 2, 3)
    ]
    # lane 2's reading at the third interval never arrived (seq 8)
    rows = [r for r in rows if r["seq"] != 8]
    write_landing(settings.home, "traffic", rows)
    load(settings, "r1")
    with db.reader(settings) as con:
        got = con.execute(
            "select kind, seq_from, seq_to, missing_count, lane_before, lane_after "
            "from dq.seq_gaps where feed = 'traffic'"
        ).fetchall()
    assert got == [("gap", 8, 8, 1, 1, 3)]


def test_rerun_and_redelivery_do_not_duplicate(settings: Settings) -> None:
    rows = air({0: 1, 1: 2, 2: 6, 3: 7, 4: 2, 5: 3})  # a gap, then a reset
    write_landing(settings.home, "air", rows)
    load(settings, "r1")
    first = gaps(settings)
    assert [g[0] for g in first] == ["gap", "reset"]
    # the same run again: the ledger loads nothing
    load(settings, "r2")
    # the same readings re-delivered in a new file (another received_at, so another checksum):
    # merged as duplicates, the devices' anomalies recomputed, nothing added or re-dated
    redelivered = [dict(r, received_at=r["received_at"] + timedelta(hours=1)) for r in rows]
    write_landing(settings.home, "air", redelivered)
    out = load(settings, "r3")
    assert out["air"]["loaded"] and out["air"]["duplicate"] == len(rows)
    assert gaps(settings) == first
    # and the step itself, run twice on one batch in one transaction, changes nothing
    with db.writer(settings) as con:
        params = {
            "feed": "air",
            "load_run_id": "r4",
            "validation_run_id": "v4",
            "loaded_at": datetime.now(UTC),
        }
        batch = table("air", rows)
        assert record_seq_anomalies(con, "air", batch, params) == 2
        assert record_seq_anomalies(con, "air", batch, params) == 2
    assert gaps(settings) == first


def test_year_one_reading_does_not_overflow_the_look_back(settings: Settings) -> None:
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    rows = [reading("air", year_one, seq=1), reading("air", year_one + timedelta(minutes=1), seq=3)]
    with db.writer(settings) as con:
        batch = table("air", rows)
        params = {
            "feed": "air",
            "load_run_id": "r1",
            "validation_run_id": "v1",
            "loaded_at": datetime.now(UTC),
        }
        # nothing of it is in core: the step looks and finds no anomaly, without an error
        assert record_seq_anomalies(con, "air", batch, params) == 0


def _oracle(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The anomalies of a set of readings, computed plainly in Python (the SQL's reference)."""
    by_device: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        by_device.setdefault((r["site_id"], r["device_id"]), []).append(
            (r["observed_at"], r["seq"], r["lane"] or 0)
        )
    out = set()
    for (site, dev), series in by_device.items():
        series.sort()
        for (t0, s0, _), (t1, s1, lane1) in pairwise(series):
            if s1 - s0 != 1:
                kind = "gap" if s1 - s0 > 1 else "reset" if s1 < s0 else "repeat"
                out.add((site, dev, kind, s0, s1, max(s1 - s0 - 1, 0), t0, t1, lane1 or None))
    return out


@pytest.mark.slow
def test_simulated_loss_and_late_backlogs_match_an_oracle(settings: Settings) -> None:
    """A simulated day with lost readings (seq keeps counting), gateway backlogs sent late,
    out-of-order and re-delivered messages, parsed by the real contract parser and loaded in
    arrival order, in 6-hour batches. After every load dq.seq_gaps equals the anomalies of what
    is stored; backlogs close gaps found earlier; in the end only the lost readings remain."""
    from common.catalogue import load_catalogue
    from ingestion.contract import ContractParser
    from simulator.simulate import Faults, Generator

    catalogue = load_catalogue(settings.reference_dir, settings.city)
    parser = ContractParser(catalogue, city=settings.city)
    faults = Faults(gap=0.5, backlog=0.5, out_of_order=0.01, duplicate=0.01)
    day = START.astimezone(SHANGHAI).date()
    gen = Generator(catalogue, day, 1, 7, faults, ["air", "traffic"])
    messages = list(gen)
    batches: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for m in messages:
        parsed = parser.parse(m.topic, m.payload, m.sent_at)
        assert not parsed.rejections
        slot = int((m.sent_at - START).total_seconds() // (6 * 3600))
        for r in parsed.readings:
            batches.setdefault(slot, {}).setdefault(r.feed, []).append(r.row)
    stored: dict[tuple[Any, ...], dict[str, Any]] = {}
    totals = []
    for slot in sorted(batches):
        for feed, rows in batches[slot].items():
            write_landing(settings.home, feed, rows)
            for r in rows:
                stored[(feed, r["site_id"], r["device_id"], r["lane"], r["observed_at"])] = r
        load(settings, f"r{slot}")
        with db.reader(settings) as con:
            got = {
                tuple(row)
                for row in con.execute(
                    "select site_id, device_id, kind, seq_before, seq_after, missing_count, "
                    "observed_at_before, observed_at_after, lane_after from dq.seq_gaps"
                ).fetchall()
            }
        assert got == _oracle(list(stored.values())), f"after load r{slot}"
        totals.append(sum(g[5] for g in got))
    # backlogs sent late filled gaps that earlier loads had recorded
    assert any(b < a for a, b in pairwise(totals)), totals
    # in the end: no reset or repeat, and every lost reading is counted once
    assert {g[2] for g in got} == {"gap"}
    # With this seed no lost reading is a series' first or last one (those cannot be seen).
    assert totals[-1] == gen.stats["gap_readings"] > 0, totals
