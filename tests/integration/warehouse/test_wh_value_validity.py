"""Validity per value, not per reading (issue 9 item 3; GB 3095: a value that fails a check is NA
for its own averages only). Real landing files -> real GX validation -> load into a real DuckDB
file -> the KPI SQL (compute_air_range / compute_water_range) on that same file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from support.wh_factory import SITES, series, write_landing

from common.catalogue import FEEDS
from common.settings import Settings
from expectations.reference import feed_rules
from expectations.suites import specs
from ingestion.schema import VALUE_COLUMNS
from steps.ingest import load_feed, validate_feed
from transforms.air import compute_air_range
from transforms.water import compute_water_range
from warehouse import db
from warehouse.followups import record_dq
from warehouse.ledger import discover_new_files
from warehouse.report import ingest_summary, value_validity

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 21)
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # DAY 00:00 in Shanghai
# Minutes 0..15 of every hour carry the fault: 16 of 60 minutes leave 44 < 45, so a pollutant
# hit in all of them has no valid hour (and under per-reading validity neither had the rest).
BAD_MINUTES = range(16)


def _air_day() -> list[dict[str, Any]]:
    """One day of minute readings of WS-AIR-01 (00:01 .. 24:00 local), varied so that no
    flat-line check fires; pm25 averages 34."""
    rows = series("air", START + timedelta(minutes=1), 1440)
    for i, r in enumerate(rows):
        r.update(
            pm25_ugm3=30.0 + i % 9,
            pm10_ugm3=60.0 + i % 5,
            no2_ugm3=20.0 + i % 4,
            o3_ugm3=50.0 + i % 6,
        )
    return rows


def _bad(r: dict[str, Any]) -> bool:
    return r["observed_at"].minute in BAD_MINUTES


def _load(settings: Settings, run_id: str) -> dict[str, Any]:
    found = discover_new_files(settings)
    out = {}
    for feed in FEEDS:
        summary = validate_feed(settings, feed, found[feed], run_id)
        out[feed] = load_feed(settings, summary)
    record_dq(settings)
    return out


def q(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with db.reader(settings) as con:
        return con.execute(sql, params).fetchall()


def _daily_station(settings: Settings, site: str = "WS-AIR-01") -> dict[str, Any]:
    with db.writer(settings) as con:
        compute_air_range(con, DAY, DAY)
        cur = con.execute(
            "select * from int.air_daily_station where site_id = ? and local_date = ?", [site, DAY]
        )
        cols = [c[0] for c in cur.description]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(cols, row, strict=True))


def test_flagged_o3_leaves_the_days_pm25_valid(settings: Settings) -> None:
    rows = _air_day()
    for r in rows:
        if _bad(r):
            r["o3_ugm3"] = 2000.0  # above the analyser's full scale (o3_ugm3_in_range)
    write_landing(settings.home, "air", rows)
    out = _load(settings, "r1")
    n_bad = sum(_bad(r) for r in rows)
    assert n_bad == 24 * 16
    assert (out["air"]["new"], out["air"]["flagged"], out["air"]["partly_valid"]) == (
        1440,
        n_bad,
        n_bad,
    )

    # stored: the readings count as a whole, only their O3 does not, and why
    stored = q(
        settings,
        "select is_valid, invalid_columns, failed_expectations, count(*) from core.obs_air "
        "group by all order by 4",
    )
    assert stored == [
        (True, ["o3_ugm3"], "o3_ugm3_in_range", n_bad),
        (True, None, "", 1440 - n_bad),
    ]
    flags = q(
        settings,
        "select expectation, scope, invalidated_columns, min(observed_value), count(*) "
        "from dq.flagged_readings group by all",
    )
    assert flags == [("o3_ugm3_in_range", "value", ["o3_ugm3"], 2000.0, n_bad)]
    per_value = dict(
        (col, rest)
        for col, *rest in q(
            settings,
            "select column_name, sum(received_values), sum(valid_values), "
            "sum(invalid_value_check), sum(invalid_reading) from dq.site_day_values "
            "where feed = 'air' group by all",
        )
    )
    assert per_value["o3_ugm3"] == [1440, 1440 - n_bad, n_bad, 0]
    assert per_value["pm25_ugm3"] == [1440, 1440, 0, 0]
    counts = q(settings, "select partly_valid, flagged, accepted_valid from dq.batch_counts")
    assert counts == [(n_bad, n_bad, 1440 - n_bad)]
    # what the demo prints: the load run's invalid values per column and why, and the days'
    # validity per value column
    text = ingest_summary(settings)
    assert f"partly_valid={n_bad}" in text
    assert f"invalid per value: o3_ugm3={n_bad} (o3_ugm3_in_range {n_bad})" in text
    table = value_validity(settings, DAY, DAY).splitlines()
    o3 = next(line.split() for line in table if " o3_ugm3 " in line)
    pm25 = next(line.split() for line in table if " pm25_ugm3 " in line)
    assert o3 == ["air", "o3_ugm3", "1439", str(1439 - (n_bad - 1)), str(n_bad - 1), "0"]
    assert pm25 == ["air", "pm25_ugm3", "1439", "1439", "0", "0"]

    # the KPI chain: O3 has no valid hour, every other pollutant keeps all 24
    daily = _daily_station(settings)
    assert daily["count_hours_pm25"] == 24
    assert daily["count_hours_so2"] == daily["count_hours_no2"] == daily["count_hours_co"] == 24
    assert 30 <= float(daily["pm25_ugm3"]) <= 38  # the day's mean of 30..38
    assert daily["count_hours_o3"] == 0
    assert daily["o3_8h_max_ugm3"] is None and daily["o3_1h_max_ugm3"] is None


def test_pm25_above_pm10_invalidates_both_pm_values_only(settings: Settings) -> None:
    rows = _air_day()
    for r in rows:
        if _bad(r):
            r.update(pm25_ugm3=120.0, pm10_ugm3=60.0)  # PM2.5 twice PM10: one analyser is wrong
    write_landing(settings.home, "air", rows)
    _load(settings, "r1")
    stored = q(
        settings,
        "select is_valid, invalid_columns, failed_expectations, count(*) from core.obs_air "
        "where failed_expectations <> '' group by all",
    )
    assert stored == [(True, ["pm10_ugm3", "pm25_ugm3"], "pm25_not_above_pm10", 24 * 16)]
    flags = q(
        settings, "select distinct column_name, scope, invalidated_columns from dq.flagged_readings"
    )
    assert flags == [("pm25_ugm3", "value", ["pm10_ugm3", "pm25_ugm3"])]

    daily = _daily_station(settings)
    assert daily["count_hours_pm25"] == daily["count_hours_pm10"] == 0
    assert daily["pm25_ugm3"] is None and daily["pm10_ugm3"] is None
    for p in ("so2", "no2", "co", "o3"):
        assert daily[f"count_hours_{p}"] == 24, p
    assert daily["o3_1h_max_ugm3"] is not None


def test_device_maintenance_flag_still_invalidates_the_whole_reading(settings: Settings) -> None:
    rows = _air_day()
    for r in rows:
        if _bad(r):
            r["flags"] = "maintenance"
    write_landing(settings.home, "air", rows)
    out = _load(settings, "r1")
    assert (out["air"]["flagged"], out["air"]["partly_valid"]) == (24 * 16, 0)
    assert "invalid per value: whole reading=384 (device_flag 384)" in ingest_summary(settings)
    stored = q(
        settings,
        "select is_valid, invalid_columns, failed_expectations, count(*) from core.obs_air "
        "where failed_expectations <> '' group by all",
    )
    assert stored == [(False, None, "device_flag:maintenance", 24 * 16)]
    assert q(settings, "select distinct scope from dq.flagged_readings") == [("reading",)]
    per_value = q(
        settings,
        "select distinct invalid_reading, invalid_value_check from dq.site_day_values "
        "where feed = 'air' and column_name in ('pm25_ugm3', 'o3_ugm3') and local_date = ?",
        [DAY],
    )
    assert per_value == [(24 * 16 - 1, 0)]  # the 24:00 reading belongs to the next local date

    daily = _daily_station(settings)
    for p in ("pm25", "pm10", "so2", "no2", "co", "o3"):
        assert daily[f"count_hours_{p}"] == 0, p
    assert daily["pm25_ugm3"] is None


def test_water_item_out_of_range_leaves_the_samples_other_items(settings: Settings) -> None:
    site, _dev, period = SITES["water"]
    rows = series("water", START + timedelta(seconds=period), 6)  # 04:00 .. 24:00 local
    rows = rows[:5]  # 04:00 .. 20:00: all on DAY
    for i, r in enumerate(rows):
        r.update(do_mgl=8.0 + i / 10, ph=7.5 + i / 100)
    rows[2]["ph"] = 12.0  # no natural water: a probe fault (ph_natural_water)
    write_landing(settings.home, "water", rows)
    _load(settings, "r1")
    stored = q(
        settings,
        "select is_valid, invalid_columns, failed_expectations from core.obs_water "
        "where failed_expectations <> ''",
    )
    assert stored == [(True, ["ph"], "ph_natural_water")]

    with db.writer(settings) as con:
        compute_water_range(con, DAY, DAY)
        items = dict(
            con.execute(
                "select channel, n_results from int.water_daily_item "
                "where site_id = ? and local_date = ?",
                [site, DAY],
            ).fetchall()
        )
        mean_ph = con.execute(
            "select sum_value / n_results from int.water_daily_item "
            "where site_id = ? and local_date = ? and channel = 'ph'",
            [site, DAY],
        ).fetchone()[0]  # type: ignore[index]
    assert items["ph"] == 4
    assert items["do_mgl"] == items["nh3n_mgl"] == items["codmn_mgl"] == 5
    assert float(mean_ph) == pytest.approx((7.5 + 7.51 + 7.53 + 7.54) / 4)


def test_every_row_expectation_declares_what_it_invalidates(settings: Settings) -> None:
    """Whole-reading failures are exactly the key, catalogue, time and device-flag checks; every
    other row-level expectation names value columns of its own feed."""
    from common.catalogue import load_catalogue

    catalogue = load_catalogue(settings.reference_dir, settings.city)
    for feed in FEEDS:
        rules = feed_rules(settings.reference_dir, feed, DAY)
        rows = [s for s in specs(feed, rules, catalogue, 300) if s.level == "row"]
        reading = {s.name for s in rows if s.scope == "reading"}
        keys = {"site_id", "device_id", "observed_at"} | ({"lane"} if feed == "traffic" else set())
        assert reading == {f"{k}_not_null" for k in keys} | {
            "site_in_catalogue",
            "device_in_catalogue",
            "observed_at_not_future",
            "device_flag",
        }, feed
        values = set(VALUE_COLUMNS[feed].values())
        for s in rows:
            assert s.scope in ("reading", "value"), s.name
            if s.scope == "value":
                assert s.invalidates and set(s.invalidates) <= values, s.name
                assert list(s.invalidates) == sorted(s.invalidates)
            else:
                assert s.invalidates == (), s.name
    air = {
        s.name: s.invalidates
        for s in specs("air", feed_rules(settings.reference_dir, "air", DAY), catalogue, 300)
    }
    assert air["pm25_not_above_pm10"] == ("pm10_ugm3", "pm25_ugm3")
    assert air["o3_ugm3_in_range"] == ("o3_ugm3",)
