"""Each kind of implausible reading is flagged by the expectation meant for it (real GX runs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from support.wh_factory import SITES, reading, table

from common.catalogue import Catalogue
from common.settings import REPO_ROOT
from expectations.reference import feed_rules
from expectations.suites import SUITE_VERSION_META, build_suite
from expectations.validate import Validation, validate_table

START = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
RUN_TIME = START + timedelta(days=3)


def _clean(feed: str, n: int, **kw: Any) -> list[dict[str, Any]]:
    """A plausible, gently varying series (no flat-lines, no spikes) for one device."""
    step = SITES[feed][2]
    rows = []
    for i in range(n):
        wobble = (i % 7) * 0.1
        vals: dict[str, float] = {}
        if feed == "air":
            vals = {
                "pm25_ugm3": 30 + wobble * 10,
                "pm10_ugm3": 55 + wobble * 10,
                "no2_ugm3": 20 + wobble,
                "o3_ugm3": 60 + wobble,
            }
        elif feed == "water":
            vals = {
                "ph": 7.5 + wobble / 10,
                "do_mgl": 8 + wobble,
                "nh3n_mgl": 0.3 + wobble / 10,
                "conductivity_uscm": 300 + wobble,
            }
        elif feed == "waterlogging":
            vals = {"depth_cm": 0.0, "rain_mm": wobble}
        elif feed == "traffic":
            vals = {
                "speed_kmh": 35 + wobble * 10,
                "volume_veh": 40 + i % 5,
                "occupancy_pct": 8 + wobble,
            }
        vals.update(kw.pop("values", {}) if i == 0 else {})
        rows.append(reading(feed, START + timedelta(seconds=i * step), seq=i + 1, **kw, **vals))
    return rows


# (feed, kind, expectation, mutate(rows) -> index of the implausible reading)
def _set(i: int, **vals: Any):
    def f(rows: list[dict[str, Any]]) -> int:
        rows[i].update(vals)
        return i

    return f


KINDS: list[tuple[str, str, str, Any]] = [
    ("air", "unknown site", "site_in_catalogue", _set(5, site_id="WS-AIR-99")),
    ("air", "unknown device", "device_in_catalogue", _set(6, device_id="AQM-9999")),
    (
        "air",
        "observed in the future",
        "observed_at_not_future",
        _set(7, observed_at=RUN_TIME + timedelta(hours=2)),
    ),
    ("air", "negative PM2.5", "pm25_ugm3_in_range", _set(8, pm25_ugm3=-4.0)),
    ("air", "PM2.5 above PM10", "pm25_not_above_pm10", _set(9, pm25_ugm3=90.0, pm10_ugm3=40.0)),
    ("air", "humidity 150 %", "rh_pct_in_range", _set(10, rh_pct=150.0)),
    ("air", "wind bearing 400", "wind_deg_in_range", _set(11, wind_deg=400.0)),
    ("air", "CO beyond analyser scale", "co_mgm3_in_range", _set(12, co_mgm3=200.0)),
    ("air", "device in maintenance", "device_flag:maintenance", _set(13, flags="maintenance")),
    ("air", "PM2.5 spike", "spike_pm25_ugm3", _set(60, pm25_ugm3=420.0, pm10_ugm3=600.0)),
    ("water", "pH 20", "ph_possible", _set(12, ph=20.0)),
    ("water", "pH 3 in a river", "ph_natural_water", _set(13, ph=3.0)),
    ("water", "DO 40 mg/L", "do_mgl_in_range", _set(14, do_mgl=40.0)),
    ("water", "ammonia spike", "spike_nh3n_mgl", _set(15, nh3n_mgl=6.0)),
    ("waterlogging", "negative depth", "depth_cm_in_range", _set(5, depth_cm=-3.0)),
    ("waterlogging", "depth 9 m", "depth_cm_in_range", _set(6, depth_cm=900.0)),
    ("waterlogging", "rain 20 mm in a minute", "rain_rate_plausible", _set(7, rain_mm=20.0)),
    # A dry road (a few cm of puddle) reading 140 cm for one minute: a gauge echo, not a flood.
    ("waterlogging", "depth spike", "spike_depth_cm", _set(20, depth_cm=140.6)),
    ("traffic", "speed 300 km/h", "speed_kmh_in_range", _set(5, speed_kmh=300.0)),
    ("traffic", "occupancy 120 %", "occupancy_pct_in_range", _set(6, occupancy_pct=120.0)),
    (
        "traffic",
        "vehicles but loop never occupied",
        "volume_occupancy_consistent",
        _set(7, volume_veh=30.0, occupancy_pct=0.0),
    ),
    (
        "traffic",
        "no vehicles but loop half occupied",
        "volume_occupancy_consistent",
        _set(8, volume_veh=0.0, occupancy_pct=50.0),
    ),
    (
        "traffic",
        "2000 vehicles in 5 minutes on one lane",
        "volume_rate_plausible",
        _set(9, volume_veh=2000.0),
    ),
]
N = {"air": 80, "water": 18, "waterlogging": 30, "traffic": 30}  # all before RUN_TIME


def _validate(catalogue: Catalogue, feed: str, rows: list[dict[str, Any]]) -> Validation:
    t = table(feed, rows)
    t = t.append_column("row_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    return validate_table(
        feed,
        t,
        rules=feed_rules(REPO_ROOT / "reference", feed, date(2026, 11, 28)),
        catalogue=catalogue,
        run_time=RUN_TIME,
        validation_run_id=f"test-{feed}",
        future_tolerance_s=300,
    )


def _failures(v: Validation, rows: list[dict[str, Any]]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for r in v.flagged.to_pylist():
        name = r["expectation"]
        if name == "device_flag":
            name = f"device_flag:{rows[r['row_id']]['flags']}"
        out.setdefault(r["row_id"], set()).add(name)
    return out


@pytest.fixture(scope="module")
def outcomes(
    catalogue: Catalogue,
) -> dict[str, tuple[Validation, dict[int, set[str]], dict[str, int]]]:
    """One GX run per feed with every kind of that feed planted in a clean series."""
    out = {}
    for feed in N:
        rows = _clean(feed, N[feed])
        planted = {kind: mutate(rows) for f, kind, _e, mutate in KINDS if f == feed}
        v = _validate(catalogue, feed, rows)
        out[feed] = (v, _failures(v, rows), planted)
    return out


def test_at_least_15_kinds() -> None:
    assert len({k for _f, k, _e, _m in KINDS}) >= 15
    assert len({e for _f, _k, e, _m in KINDS}) >= 15


@pytest.mark.parametrize(("feed", "kind", "expectation"), [(f, k, e) for f, k, e, _m in KINDS])
def test_kind_is_flagged_by_intended_expectation(
    outcomes: dict[str, Any], feed: str, kind: str, expectation: str
) -> None:
    v, failures, planted = outcomes[feed]
    row = planted[kind]
    assert expectation in failures.get(row, set()), (kind, failures.get(row))
    assert not v.success


@pytest.mark.parametrize("feed", list(N))
def test_only_planted_readings_are_flagged(outcomes: dict[str, Any], feed: str) -> None:
    _v, failures, planted = outcomes[feed]
    assert set(failures) <= set(planted.values()), sorted(set(failures) - set(planted.values()))


def test_flat_lined_sensor_is_flagged_from_the_nth_reading(catalogue: Catalogue) -> None:
    rows = _clean("air", 130)
    for r in rows:
        r["pm25_ugm3"] = 41.0  # stuck channel; the other channels still move
    v = _validate(catalogue, "air", rows)
    flat = sorted(
        r["row_id"] for r in v.flagged.to_pylist() if r["expectation"] == "flatline_pm25_ugm3"
    )
    assert flat == list(range(119, 130))  # n = 120 in reference/validation/rules.csv


def test_flat_line_window_spans_batches(catalogue: Catalogue) -> None:
    """History from the warehouse counts: 100 stuck readings stored + 30 new -> flagged."""
    rows = _clean("air", 130)
    for r in rows:
        r["pm25_ugm3"] = 41.0
    history = table("air", rows[:100])
    t = table("air", rows[100:])
    t = t.append_column("row_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    v = validate_table(
        "air",
        t,
        rules=feed_rules(REPO_ROOT / "reference", "air", date(2026, 11, 28)),
        catalogue=catalogue,
        run_time=RUN_TIME,
        validation_run_id="test-hist",
        future_tolerance_s=300,
        history=history,
    )
    flat = sorted(
        r["row_id"] for r in v.flagged.to_pylist() if r["expectation"] == "flatline_pm25_ugm3"
    )
    assert flat == list(range(19, 30))


def test_dry_road_zero_depth_is_not_a_flat_line(catalogue: Catalogue) -> None:
    rows = _clean("waterlogging", 400)  # depth 0 for 400 minutes
    v = _validate(catalogue, "waterlogging", rows)
    assert "flatline_depth_cm" not in v.flagged_by_expectation


def test_standing_queue_is_not_inconsistent(catalogue: Catalogue) -> None:
    rows = _clean("traffic", 10)
    rows[3].update(volume_veh=0.0, occupancy_pct=100.0, speed_kmh=0.0)
    v = _validate(catalogue, "traffic", rows)
    assert "volume_occupancy_consistent" not in v.flagged_by_expectation


def test_null_channel_is_not_a_failure(catalogue: Catalogue) -> None:
    rows = _clean("air", 20)
    rows[4]["pm25_ugm3"] = None
    rows[5]["so2_ugm3"] = None
    v = _validate(catalogue, "air", rows)
    assert v.flagged.num_rows == 0


def test_results_carry_names_and_sources(outcomes: dict[str, Any]) -> None:
    v, _f, _p = outcomes["water"]
    by_name = {r["name"]: r for r in v.results}
    assert "GB 3838" in by_name["ph_natural_water"]["why"]
    assert by_name["ph_possible"]["unexpected_count"] == 1
    assert by_name["sites_reporting"]["level"] == "batch"


def test_suite_version_follows_the_rules_used(catalogue: Catalogue) -> None:
    rows = _clean("air", 12)
    rules = feed_rules(REPO_ROOT / "reference", "air", date(2026, 11, 28))

    def version(r: Any) -> str:
        t = table("air", rows)
        t = t.append_column("row_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
        v = validate_table(
            "air",
            t,
            rules=r,
            catalogue=catalogue,
            run_time=RUN_TIME,
            validation_run_id="test-version",
            future_tolerance_s=300,
        )
        # The GX suite and its result (Data Docs) carry the same version in their meta.
        assert v.gx_result.meta[SUITE_VERSION_META] == v.suite_version
        suite = build_suite("air", v.specs, v.suite_version)
        assert suite.meta[SUITE_VERSION_META] == v.suite_version
        return v.suite_version

    base = version(rules)
    assert len(base) == 64 and version(rules) == base
    b = rules.bounds[0]
    wider = replace(rules, bounds=(replace(b, max=(b.max or 0) + 1), *rules.bounds[1:]))
    assert version(wider) != base
    # A rule parameter read only by the derived columns changes it too.
    params = {k: {c: dict(p) for c, p in v.items()} for k, v in rules.params.items()}
    params["pm25_not_above_pm10"]["pm25_ugm3"]["rel_tol"] = 0.2
    assert version(replace(rules, params=params)) != base


def _site_checks(catalogue: Catalogue, rows: list[dict[str, Any]], run_time: datetime) -> Any:
    t = table("waterlogging", rows)
    t = t.append_column("row_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    return validate_table(
        "waterlogging",
        t,
        rules=feed_rules(REPO_ROOT / "reference", "waterlogging", date(2026, 11, 28)),
        catalogue=catalogue,
        run_time=run_time,
        validation_run_id="test-sites",
        future_tolerance_s=300,
    )


def test_silent_and_stale_sites_fail_batch_expectations(catalogue: Catalogue) -> None:
    sites = sorted(catalogue.by_feed("waterlogging"), key=lambda s: s.site_id)
    silent, stale = sites[0].site_id, sites[1].site_id
    n = 240  # four hours of one-minute readings
    run_time = START + timedelta(minutes=n)

    def rows_for(skip: set[str], short: set[str]) -> list[dict[str, Any]]:
        out = []
        for s in sites:
            if s.site_id in skip:
                continue
            # The stale site stopped 40 minutes ago: still 200/240 = 83 % complete.
            m = n - 40 if s.site_id in short else n
            for i in range(m):
                at = START + timedelta(minutes=i)
                out.append(
                    reading(
                        "waterlogging",
                        at,
                        site_id=s.site_id,
                        device_id=s.device_ids[0],
                        seq=i + 1,
                        rain_mm=(i % 7) * 0.1,
                    )
                )
        return out

    ok = {r["name"]: r for r in _site_checks(catalogue, rows_for(set(), set()), run_time).results}
    assert ok["site_completeness"]["success"] and ok["site_freshness"]["success"]

    v = _site_checks(catalogue, rows_for({silent}, {stale}), run_time)
    got = {r["name"]: r for r in v.results}
    assert got["site_completeness"]["level"] == "batch"
    assert not got["site_completeness"]["success"]
    assert got["site_completeness"]["unexpected_sites"] == [silent]
    assert not got["site_freshness"]["success"]
    assert got["site_freshness"]["unexpected_sites"] == [stale]
    # Recorded in the run (statistics, GX result for Data Docs), flagging no reading.
    assert not v.success
    assert v.statistics["evaluated_expectations"] == len(v.results)
    assert {"site_completeness", "site_freshness"}.isdisjoint(v.flagged["expectation"].to_pylist())
    gx_names = {r.expectation_config.meta["name"] for r in v.gx_result.results}
    assert {"site_completeness", "site_freshness"} <= gx_names


def test_one_old_reading_does_not_stretch_site_completeness(catalogue: Catalogue) -> None:
    # Issue 7 finding 1: a reading from 1970 made the batch span 56 years, so every site was
    # expected to have sent 29 million readings and site_completeness failed for all of them.
    from expectations.validate import site_frame

    rows = _clean("air", 80)
    old = reading("air", datetime(2026, 1, 2, tzinfo=UTC), seq=999)
    base = site_frame("air", table("air", rows), catalogue, RUN_TIME)
    stretched = site_frame("air", table("air", [*rows, old]), catalogue, RUN_TIME)
    site = SITES["air"][0]
    assert stretched.loc[site, "site_expected"] == base.loc[site, "site_expected"] == 80
    assert stretched.loc[site, "site_completeness_ratio"] == 1.0
