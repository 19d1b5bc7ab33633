"""The fast paths of validate+load give the same answers as the plain ones they replaced.

- the spike test (pre-filter + exact median of the candidates) against pandas' rolling median;
- the windowed checks do not depend on the batch's row order (batches stay in arrival order);
- dedupe keeps the latest copy of a key without reordering or copying the batch;
- the load attaches each failure to the right reading when part of a batch was loaded before.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support.wh_factory import series, table, write_landing

from common.settings import REPO_ROOT, Settings
from expectations.derive import _no_spike, _window_min, windowed_columns
from expectations.reference import feed_rules
from steps.ingest import load_feed, validate_feed
from warehouse import db
from warehouse.batch import dedupe_batch
from warehouse.ledger import discover_new_files

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)


def _pandas_no_spike(
    group: np.ndarray, values: np.ndarray, k: float, window: int, min_jump: float
) -> np.ndarray:
    """The previous implementation: groupby-shift-rolling median (the reference)."""
    prev = pd.Series(values).groupby(group, sort=False).shift(1)
    med = (
        prev.groupby(group, sort=False)
        .rolling(window, min_periods=max(3, window // 3))
        .median()
        .reset_index(level=0, drop=True)
        .sort_index()
        .to_numpy()
    )
    with np.errstate(invalid="ignore"):
        return ~((values > k * med) & (values - med > min_jump))


@st.composite
def _series(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, int, float]:
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, draw(st.integers(1, 6)), n))
    kind = draw(st.sampled_from(["gamma", "steps", "normal"]))
    if kind == "gamma":
        values = rng.gamma(2.0, 10.0, n)
    elif kind == "steps":  # ties and plateaus: even-sized windows, equal medians
        values = rng.integers(0, 5, n).astype(np.float64) * 50.0
    else:  # negative values and minimums
        values = rng.normal(0.0, 50.0, n)
    values[rng.random(n) < draw(st.floats(0.0, 0.6))] = np.nan
    k = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, -1.0]))
    window = draw(st.integers(3, 40))
    min_jump = draw(st.sampled_from([-10.0, 0.0, 5.0, 20.0, 100.0]))
    return group, values, k, window, min_jump


@hsettings(max_examples=300, deadline=None)
@given(_series())
def test_spike_test_equals_pandas_rolling_median(
    case: tuple[np.ndarray, np.ndarray, float, int, float],
) -> None:
    group, values, k, window, min_jump = case
    fast = _no_spike(group, values, k, window, min_jump)
    ref = _pandas_no_spike(group, values, k, window, min_jump)
    assert np.array_equal(fast, ref), np.flatnonzero(fast != ref)


def test_spike_test_flags_and_spares_what_it_should() -> None:
    values = np.array([10.0, 12.0, 11.0, 300.0, 10.0, 11.0, 12.0, 60.0, np.nan, 500.0])
    group = np.zeros(len(values), dtype=np.int64)
    ok = _no_spike(group, values, 5.0, 6, 100.0)  # window 6: at least 3 earlier readings
    # 300 is > 5 x 11 and > 100 above it; 60 is > 5 x 11.5 but not 100 above; 500 > 5 x 12.
    assert np.flatnonzero(~ok).tolist() == [3, 9]
    with pytest.raises(ValueError, match="shorter"):
        _no_spike(group, values, 5.0, 2, 100.0)


def test_window_min_equals_brute_force() -> None:
    rng = np.random.default_rng(7)
    v = rng.normal(size=500)
    v[rng.random(500) < 0.2] = np.inf
    hi = rng.integers(0, 500, 2000)
    lo = np.maximum(hi - rng.integers(0, 70, 2000), 0)
    got = _window_min(v, lo, hi)
    want = np.array([v[a:b].min() if b > a else np.inf for a, b in zip(lo, hi, strict=True)])
    assert np.array_equal(got, want)


def test_windowed_checks_do_not_depend_on_row_order() -> None:
    rules = feed_rules(REPO_ROOT / "reference", "air", date(2026, 11, 28))
    rows = []
    for dev, site in (("AQM-0101", "WS-AIR-01"), ("AQM-0201", "WS-AIR-02")):
        part = series("air", START, 200, site_id=site, device_id=dev)
        for i, r in enumerate(part):
            r["pm25_ugm3"] = 41.0 if i < 150 else 30.0 + i % 7  # a stuck run
            r["pm10_ugm3"] = 60.0 + i % 5
        part[170]["pm25_ugm3"] = 600.0  # a spike
        rows += part
    ordered = table("air", rows)
    perm = np.random.default_rng(3).permutation(len(rows))
    shuffled = table("air", [rows[i] for i in perm])
    a = windowed_columns(
        "air",
        ordered.append_column("row_id", pa.array(np.arange(len(rows)))),
        None,
        rules,
    )
    b = windowed_columns(
        "air",
        shuffled.append_column("row_id", pa.array(np.arange(len(rows)))),
        None,
        rules,
    )
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name][perm], b[name]), name
    assert (~a["dq_nospike_pm25_ugm3"]).sum() == 2  # row 170 of each device
    assert (a["dq_flat_pm25_ugm3"] >= 120).sum() == 2 * 31


def test_dedupe_keeps_latest_copy_in_arrival_order_without_copying() -> None:
    base = series("air", START, 5)
    clean = table("air", base)
    out = dedupe_batch(clean)
    assert out.column("row_id").to_pylist() == [0, 1, 2, 3, 4]
    # No duplicates: the very same buffers (no copy of the batch).
    assert out["content_hash"].chunk(0).buffers()[2].address == (
        clean["content_hash"].chunk(0).buffers()[2].address
    )
    later = START + timedelta(hours=1)
    rows = [
        base[3],
        dict(base[1], content_hash="v2", received_at=later),
        base[1],
        base[0],
        dict(base[0], content_hash="tie-later-read", received_at=base[0]["received_at"]),
        base[2],
    ]
    out = dedupe_batch(table("air", rows))
    assert out["content_hash"].to_pylist() == [
        base[3]["content_hash"],
        "v2",
        "tie-later-read",
        base[2]["content_hash"],
    ]
    assert out.column("row_id").to_pylist() == [0, 1, 2, 3]


def test_failures_land_on_their_readings_when_part_of_the_batch_was_loaded(
    settings: Settings,
) -> None:
    """A copy of a loaded file is dropped from the batch by checksum, so row ids are no longer
    positions: the flags of the fresh file must still go to the right readings."""
    first = write_landing(settings.home, "air", series("air", START, 20))
    found = discover_new_files(settings)
    load_feed(settings, validate_feed(settings, "air", found["air"], "r1"))
    copy = first[0].with_name("part-00000000-copy.parquet")  # sorts before the fresh file
    shutil.copy(first[0], copy)
    fresh = series("air", START + timedelta(minutes=20), 10)
    fresh[2]["pm25_ugm3"] = -2.0
    fresh[5]["flags"] = "maintenance"
    write_landing(settings.home, "air", fresh)
    found = discover_new_files(settings)
    assert found["air"][0] == str(copy)
    out = load_feed(settings, validate_feed(settings, "air", found["air"], "r2"))
    assert (out["new"], out["flagged"]) == (10, 2)
    with db.reader(settings) as con:
        invalid = con.execute(
            "select seq, failed_expectations, is_valid, invalid_columns from core.obs_air "
            "where failed_expectations <> '' order by seq"
        ).fetchall()
        keys = con.execute(
            "select count(*), count(distinct (site_id, device_id, observed_at)) from core.obs_air"
        ).fetchone()
        flagged = con.execute(
            "select f.expectation, o.seq from dq.flagged_readings as f "
            "join core.obs_air as o using (site_id, device_id, observed_at) order by 2"
        ).fetchall()
    # a value check invalidates its value only; a device flag the whole reading
    assert invalid == [
        (3, "pm25_ugm3_in_range", True, ["pm25_ugm3"]),
        (6, "device_flag:maintenance", False, None),
    ]
    assert keys == (30, 30)
    assert flagged == [("pm25_ugm3_in_range", 3), ("device_flag:maintenance", 6)]


def test_natural_keys_stay_unique_through_redeliveries_and_revisions(
    settings: Settings,
) -> None:
    """core.obs_* has no primary key: the merge alone keeps one row per natural key."""
    rows = series("air", START, 40)
    traffic = series("traffic", START, 20, lane=1) + series("traffic", START, 20, lane=2)
    write_landing(settings.home, "air", rows)
    write_landing(settings.home, "traffic", traffic)
    later = START + timedelta(hours=3)
    for run in ("r1", "r2", "r3"):
        found = discover_new_files(settings)
        for feed in ("air", "traffic"):
            load_feed(settings, validate_feed(settings, feed, found[feed], run))
        # next run: exact re-deliveries, revisions (twice in one batch), stale copies
        write_landing(
            settings.home,
            "air",
            [
                *rows[:10],
                dict(rows[12], pm25_ugm3=50.0, content_hash=f"{run}-a", received_at=later),
                dict(rows[12], pm25_ugm3=51.0, content_hash=f"{run}-b", received_at=later),
                dict(rows[14], content_hash="old", received_at=START - timedelta(hours=1)),
            ],
        )
        write_landing(
            settings.home,
            "traffic",
            [
                *traffic[:5],
                dict(traffic[25], speed_kmh=44.0, content_hash=f"{run}-t", received_at=later),
            ],
        )
        later += timedelta(minutes=1)
    with db.reader(settings) as con:
        air = con.execute(
            "select count(*), count(distinct (site_id, device_id, observed_at)) from core.obs_air"
        ).fetchone()
        trf = con.execute(
            "select count(*), count(distinct (site_id, device_id, lane, observed_at)) "
            "from core.obs_traffic"
        ).fetchone()
        rev = con.execute("select pm25_ugm3 from core.obs_air where seq = 13").fetchall()
    assert air == (40, 40)
    assert trf == (40, 40)
    assert rev == [(51.0,)]  # the copy read last wins a received_at tie
