"""The provisional intra-day values (issue 11 item 2) on a warehouse built by the real load
chain, on every backend: hourly AQI per station and county checked against the independent
reference implementation, the open day never counted in the good-days ratio, the daily run's
pack replacing the provisional rows (with the same values), waterlogging depths and open events,
hourly TPI, idempotence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from support.air_reference_impl import (
    POLLUTANTS,
    Result,
    county_hourly,
    hourly_aqi,
    hourly_means,
    moving24,
)
from support.intraday_helpers import AIR_STATIONS, WET_CLOSED, WET_OPEN, air_readings, land, local
from support.serving_helpers import load

from common.settings import Settings
from transforms.daily import compute_day
from transforms.intraday import compute_intraday
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.backends("file", "sqlite", "postgres")]

DAY = date(2026, 11, 25)  # the open day; in the past of the real clock (no future readings)
NOW = local(DAY, 10, 25)  # 10:25 China time: hours ending 01:00 .. 10:00 are complete
UNTIL = local(DAY, 10)


def rows(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with db.reader(settings) as con:
        return con.execute(sql, params or []).fetchall()


def check_air_against_reference(settings: Settings) -> int:
    """Every provisional hourly AQI (stations and county) equals the reference
    implementation's, from the same stored readings. Returns the number of hours checked."""
    with db.reader(settings) as con:
        readings = air_readings(con, UNTIL)
    ref = Result(hourly=hourly_means(readings))
    assessment = [s for s, _d, is_a, _f in AIR_STATIONS if is_a]
    got = rows(
        settings,
        "select scope, hour_end_local, aqi, primary_pollutants, excluded_missing_pollutant,"
        " is_provisional from kpi.intraday_air_hourly where local_date = ?",
        [DAY],
    )
    scopes = {r[0] for r in got}
    assert {"county", *(s for s, *_ in AIR_STATIONS)} <= scopes
    n = 0
    for scope, h, aqi, primary, excluded, is_provisional in got:
        assert is_provisional
        d = (h - timedelta(hours=1)).date()
        if scope == "county":
            one, mov = county_hourly(ref, assessment, h)
        else:
            one = ref.hourly.get((scope, h), dict.fromkeys(POLLUTANTS))
            mov = {p: moving24(ref, scope, h, p) for p in ("pm25", "pm10", "so2")}
        want = hourly_aqi(d, one, mov)
        assert (aqi, primary, excluded) == (want.aqi, want.primary, want.excluded_missing), (
            scope,
            h,
        )
        n += aqi is not None
    return n


def test_intraday_values_then_the_daily_run_finalizes(settings: Settings) -> None:
    # Yesterday complete and today up to 10:25, loaded by the ingest chain.
    land(settings, local(DAY - timedelta(days=1)), NOW)
    load(settings, "intraday-1")
    summary = compute_intraday(settings, now=NOW)

    # Nothing packed yet: yesterday and today are both open.
    assert summary.open_days == [(DAY - timedelta(days=1)).isoformat(), DAY.isoformat()]
    assert summary.data_until == UNTIL.astimezone(UTC).isoformat()
    hours = rows(
        settings,
        "select local_date, count(distinct hour_end_local), max(hour_end_local)"
        " from kpi.intraday_air_hourly where scope = 'county' group by 1 order by 1",
    )
    assert hours == [
        (DAY - timedelta(days=1), 24, datetime(DAY.year, DAY.month, DAY.day)),
        (DAY, 10, datetime(DAY.year, DAY.month, DAY.day, 10)),
    ]
    # today's hours against the independent implementation: every scope, every hour
    assert check_air_against_reference(settings) >= 10 * 5

    # Good days: nothing computed by the daily run, so nothing counted, today open.
    day_row = rows(
        settings,
        "select counted_through, ytd_good_days, ytd_valid_days, ytd_ratio_pct, is_day_counted,"
        " days_not_counted, hours_so_far, county_hours_valid, aqi_so_far, last_hour_aqi"
        " from kpi.intraday_air_day where local_date = ?",
        [DAY],
    )[0]
    last_county = rows(
        settings,
        "select aqi from kpi.intraday_air_hourly where scope = 'county' and hour_end_local = ?",
        [UNTIL.replace(tzinfo=None)],
    )[0][0]
    assert day_row[:5] == (None, 0, 0, None, False)
    assert day_row[5] == DAY.timetuple().tm_yday  # every day of the year so far uncounted
    assert day_row[6:8] == (10, 10)
    assert day_row[8] is not None and day_row[9] == last_county

    # Waterlogging: one event closed today, one still open; current depths.
    events = {
        r[0]: r[1:]
        for r in rows(
            settings,
            "select site_id, status, local_date, max_level, is_provisional"
            " from kpi.intraday_waterlogging_events",
        )
    }
    assert events[WET_CLOSED[0]] == ("closed", DAY, "closure", True)
    assert events[WET_OPEN[0]] == ("ongoing", DAY, "closure", True)  # 30 cm at 10:25
    depths = {
        r[0]: r[1:]
        for r in rows(
            settings,
            "select site_id, depth_cm, level_code, observed_at from kpi.intraday_waterlogging_depths",
        )
    }
    assert depths[WET_CLOSED[0]][:2] == (0.0, "none")
    assert depths[WET_OPEN[0]][0] > 25 and depths[WET_OPEN[0]][1] == "closure"
    assert depths[WET_OPEN[0]][2] == NOW.astimezone(UTC)  # the newest reading, not the hour's end
    assert depths["WS-WLG-03"] == (None, None, None)  # a point with no reading

    # Traffic: TPI per scope for the complete hours of today.
    tpi = rows(
        settings,
        "select count(*), min(hour_end), max(hour_end) from kpi.intraday_traffic_hourly"
        " where scope = 'county' and local_date = ?",
        [DAY],
    )[0]
    assert tpi == (10, datetime(2026, 11, 25, 1), datetime(2026, 11, 25, 10))

    # Idempotent: a rerun gives the same rows.
    before = _snapshot(settings)
    compute_intraday(settings, now=NOW)
    assert _snapshot(settings) == before

    # The 01:00 run packs yesterday: its provisional rows go, the final ones equal them.
    provisional_yesterday = rows(
        settings,
        "select scope, hour_end, aqi, primary_pollutants from kpi.intraday_air_hourly"
        " where local_date = ? order by 1, 2",
        [DAY - timedelta(days=1)],
    )
    provisional_tpi = rows(
        settings,
        "select scope, hour_start, tpi from kpi.intraday_traffic_hourly"
        " where local_date = ? order by 1, 2",
        [DAY - timedelta(days=1)],
    )
    compute_day(settings, DAY - timedelta(days=1), as_of=NOW)
    summary = compute_intraday(settings, now=NOW)
    assert summary.open_days == [DAY.isoformat()]
    assert rows(settings, "select distinct local_date from kpi.intraday_air_hourly") == [(DAY,)]
    final = rows(
        settings,
        "select scope, hour_end, aqi, primary_pollutants from kpi.air_hourly"
        " where local_date = ? order by 1, 2",
        [DAY - timedelta(days=1)],
    )
    assert final == provisional_yesterday
    final_tpi = rows(
        settings,
        "select scope, hour_start, tpi from kpi.traffic_hourly where local_date = ? order by 1, 2",
        [DAY - timedelta(days=1)],
    )
    assert final_tpi == provisional_tpi

    # Good days now counted through yesterday, as the daily run counts it; today still open.
    counted = rows(
        settings,
        "select sum(is_good_day::int), sum(is_valid_day::int) from kpi.air_daily"
        " where year(local_date) = ? and local_date < ?",
        [DAY.year, DAY],
    )[0]
    day_row = rows(
        settings,
        "select counted_through, ytd_good_days, ytd_valid_days, is_day_counted, days_not_counted"
        " from kpi.intraday_air_day",
    )
    assert day_row == [(DAY - timedelta(days=1), counted[0], counted[1], False, 1)]
    assert counted[1] == 1  # yesterday was a complete, valid day
    assert check_air_against_reference(settings) >= 10 * 5


def test_intraday_before_any_load_or_kpi_run(settings: Settings) -> None:
    """A fresh warehouse (no data, no KPI tables yet): the run creates its tables and writes the
    open day with nothing counted."""
    with db.writer(settings):
        pass
    summary = compute_intraday(settings, now=NOW)
    assert summary.open_days[-1] == DAY.isoformat()
    assert rows(settings, "select count(*) from kpi.intraday_air_hourly where aqi is not null") == [
        (0,)
    ]
    got = rows(
        settings,
        "select ytd_valid_days, aqi_so_far, is_day_counted from kpi.intraday_air_day"
        " where local_date = ?",
        [DAY],
    )
    assert got == [(0, None, False)]


def _snapshot(settings: Settings) -> list[list[tuple[Any, ...]]]:
    out = []
    for table in (
        "kpi.intraday_air_hourly",
        "kpi.intraday_air_day",
        "kpi.intraday_traffic_hourly",
        "kpi.intraday_waterlogging_events",
        "kpi.intraday_waterlogging_depths",
    ):
        with db.reader(settings) as con:
            rel = con.table(table)
            cols = [c for c in rel.columns if c != "computed_at"]
            out.append(sorted(rel.select(*cols).fetchall(), key=repr))
    return out
