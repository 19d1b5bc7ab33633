"""The GB 3095 validity rules, the day cut, and the HJ 633 special rules, one at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import duckdb
import pytest
from support.air_helpers import (
    AS_OF,
    ASSESSMENT,
    SITES,
    hourly_constant,
    insert_readings,
    local,
    to_dec,
)
from support.air_reference_impl import Reading, compute

from transforms.air import compute_air_range

ZERO = {"pm25": 10.0, "pm10": 20.0, "so2": 5.0, "no2": 10.0, "co": 0.4, "o3": 50.0}


def _minutes(site: str, start: datetime, minutes: list[int], value: float) -> list[Reading]:
    return [Reading(site, start + timedelta(minutes=m), 60, {"pm25": value}) for m in minutes]


@pytest.mark.parametrize("session_tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_day_cut_2359_59_and_0000_00(mem: duckdb.DuckDBPyConnection, session_tz: str) -> None:
    """observed_at ends the reading's period (contract v1): a 1-minute reading stamped 00:00:00
    covers 23:59-24:00 and belongs to the hour stamped D+1 00:00 (day D), as does 23:59:59;
    00:00:01 starts the next hour: whatever the session time zone (issue 9, item 6)."""
    site = "WS-AIR-01"
    rs = _minutes(site, local(2026, 6, 10, 23), list(range(16, 59)), 10.0)  # 43 minutes
    rs.append(Reading(site, local(2026, 6, 10, 23, 59, 0), 60, {"pm25": 10.0}))  # minute 58
    rs.append(Reading(site, local(2026, 6, 10, 23, 59, 59), 60, {"pm25": 100.0}))  # minute 59
    rs.append(Reading(site, local(2026, 6, 11, 0, 0, 0), 60, {"pm25": 200.0}))  # minute 59
    rs.append(Reading(site, local(2026, 6, 11, 0, 0, 1), 60, {"pm25": 1.0}))  # next hour
    rs += _minutes(site, local(2026, 6, 11, 0), list(range(2, 45)), 10.0)  # 43 more minutes
    insert_readings(mem, rs)
    mem.execute("set TimeZone = ?", [session_tz])
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 11), as_of=AS_OF)
    got = dict(
        (h, (d, v, m))
        for h, d, v, m in mem.execute(
            "select hour_end_local, local_date, pm25_ugm3, minutes_pm25 from int.air_hourly_station"
            " where site_id = ? and minutes_pm25 > 0",
            [site],
        ).fetchall()
    )
    assert got == {
        # minutes 15..59 = 45: valid, (44 x 10 + 100 + 200) / 46
        datetime(2026, 6, 11, 0): (date(2026, 6, 10), Decimal("16.086957"), 45),
        # minutes 0..43 = 44: not valid
        datetime(2026, 6, 11, 1): (date(2026, 6, 11), None, 44),
    }
    # the instant stored is the China-time hour end
    h = mem.execute(
        "select epoch(hour_end) from int.air_hourly_station"
        " where site_id = ? and hour_end_local = ?",
        [site, datetime(2026, 6, 11, 0)],
    ).fetchone()
    assert h == (datetime(2026, 6, 10, 16, tzinfo=UTC).timestamp(),)  # 00:00 CST = 16:00 UTC


def test_45_minute_rule_counts_distinct_minutes(mem: duckdb.DuckDBPyConnection) -> None:
    site = "WS-AIR-02"
    # stamped 08:01..08:44: the minutes ending then, 44 of the hour ending 09:00: invalid
    rs = _minutes(site, local(2026, 6, 10, 8), list(range(1, 45)), 30.0)
    rs += _minutes(site, local(2026, 6, 10, 9), list(range(1, 46)), 30.0)  # 45 minutes: valid
    insert_readings(mem, rs)
    # a second device in the same 44 minutes adds readings but no minute
    mem.execute(
        "insert into core.obs_air select * replace ('DEV-2' as device_id, 40.0 as pm25_ugm3)"
        " from core.obs_air where site_id = ? and observed_at < ?",
        [site, local(2026, 6, 10, 9)],
    )
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    got = dict(
        mem.execute(
            "select hour(hour_end_local), pm25_ugm3 from int.air_hourly_station"
            " where site_id = ? and local_date = ? and hour(hour_end_local) in (9, 10)",
            [site, date(2026, 6, 10)],
        ).fetchall()
    )
    assert got == {9: None, 10: Decimal("30.000000")}
    minutes, readings = mem.execute(
        "select minutes_pm25, count_readings from int.air_hourly_station"
        " where site_id = ? and local_date = ? and hour(hour_end_local) = 9",
        [site, date(2026, 6, 10)],
    ).fetchone()  # type: ignore[misc]
    assert (minutes, readings) == (44, 88)


def test_overlapping_readings_count_each_minute_once(mem: duckdb.DuckDBPyConnection) -> None:
    # Issue 7 finding 3: minutes are the union the readings cover, clipped to the hour. Nine
    # 5-minute readings ending at minutes 1..9 cover 9 minutes, not 45 (the old count gave
    # 9 distinct minutes x 5 = 45 and a valid hour); one ending at 08:01 covers 08:00-08:01.
    site = "WS-AIR-03"
    start = local(2026, 6, 10, 8)
    rs = [Reading(site, start + timedelta(minutes=m), 300, {"pm25": 30.0}) for m in range(1, 10)]
    rs += [Reading(site, start + timedelta(hours=1, minutes=5 * k), 300, {"pm25": 30.0})
           for k in range(1, 10)]  # fmt: skip
    insert_readings(mem, rs)
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    got = mem.execute(
        "select hour(hour_end_local), minutes_pm25, pm25_ugm3 from int.air_hourly_station"
        " where site_id = ? and local_date = ? and hour(hour_end_local) in (9, 10) order by 1",
        [site, date(2026, 6, 10)],
    ).fetchall()
    assert got == [(9, 9, None), (10, 45, Decimal("30.000000"))]


def test_20_hour_rule(mem: duckdb.DuckDBPyConnection) -> None:
    # WS-AIR-01 has 19 valid hours on the day, WS-AIR-02 has 20
    insert_readings(mem, hourly_constant("WS-AIR-01", local(2026, 6, 10, 1), 19, ZERO))
    insert_readings(mem, hourly_constant("WS-AIR-02", local(2026, 6, 10, 1), 20, ZERO))
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    got = dict(
        mem.execute(
            "select site_id, pm25_ugm3 from int.air_daily_station"
            " where site_id in ('WS-AIR-01', 'WS-AIR-02')"
        ).fetchall()
    )
    assert got == {"WS-AIR-01": None, "WS-AIR-02": Decimal("10.000000")}


def test_6_of_8_rule_and_8h_mean(mem: duckdb.DuckDBPyConnection) -> None:
    site = "WS-AIR-01"
    # O3 hourly values stamped 01:00 .. 08:00 = 10, 20, ..., 80; the hours stamped 02:00 and
    # 03:00 are missing
    rs = [
        Reading(site, local(2026, 6, 10, h), 3600, {"o3": 10.0 * h})
        for h in range(1, 9)
        if h not in (2, 3)
    ]
    insert_readings(mem, rs)
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    got = dict(
        mem.execute(
            "select hour(hour_end_local), o3_8h_ugm3 from int.air_moving_station"
            " where site_id = ? and hour(hour_end_local) between 6 and 9",
            [site],
        ).fetchall()
    )
    # ending 06:00: 01, 04, 05, 06 = 4 values; 07:00: 5 values; 08:00: 6 values -> valid
    assert got[6] is None and got[7] is None
    assert got[8] == Decimal("51.666667")  # (10+40+50+60+70+80) / 6, half-even at 1e-6
    assert got[9] is None  # 04..08 = 5 values


@pytest.mark.parametrize("d", [date(2025, 6, 10), date(2026, 6, 10)])
def test_o3_daily_max_8h_ignores_an_evening_episode_of_the_day_before(
    mem: duckdb.DuckDBPyConnection, d: date
) -> None:
    """HJ 663 (standards.md 2): D's daily max 8h O3 is the highest of the 8h means ending
    08:00 .. 24:00 of D. An O3 episode on the evening of D-1 raises the windows ending D 01:00 ..
    07:00, which never count; D+1's morning never counts either. Same under both rule sets."""
    site = "WS-AIR-01"
    prev, nxt = d - timedelta(days=1), d + timedelta(days=1)
    rs = []
    for i in range(24 * 3):  # hours stamped D-1 01:00 .. D+2 00:00
        end = local(prev.year, prev.month, prev.day, 1) + timedelta(hours=i)
        o3 = 50.0
        if local(prev.year, prev.month, prev.day, 18) <= end <= local(d.year, d.month, d.day, 0):
            o3 = 250.0  # D-1 evening
        if local(nxt.year, nxt.month, nxt.day, 1) <= end <= local(nxt.year, nxt.month, nxt.day, 8):
            o3 = 400.0  # D+1 morning
        rs.append(Reading(site, end, 3600, {"o3": o3}))
    insert_readings(mem, rs)
    compute_air_range(mem, d, d, as_of=AS_OF)
    o3_8h, o3_1h, windows = mem.execute(
        "select o3_8h_max_ugm3, o3_1h_max_ugm3, count_o3_8h_windows from int.air_daily_station"
        " where site_id = ? and local_date = ?",
        [site, d],
    ).fetchone()  # type: ignore[misc]
    # the window ending D 01:00 (D-1 18:00 .. D 01:00: 7 x 250 + 50 -> 225) exists but is not
    # one of the day's 17
    moving = mem.execute(
        "select o3_8h_ugm3 from int.air_moving_station where site_id = ? and hour_end_local = ?",
        [site, datetime(d.year, d.month, d.day, 1)],
    ).fetchone()
    assert moving == (Decimal("225.000000"),)
    assert o3_8h == Decimal("50.000000")
    assert o3_1h == Decimal("50.000000")
    assert windows == 17
    ref = compute(rs, SITES, [d])
    assert ref.daily[(site, d)]["o3_8h"] == Fraction(50)


@pytest.mark.parametrize("d", [date(2025, 6, 10), date(2026, 6, 10)])
@pytest.mark.parametrize(
    ("last_hour", "o3", "want_windows", "want"),
    [
        (19, 100.0, 14, Decimal("100.000000")),  # 14 valid windows: valid
        (18, 100.0, 13, None),  # 13 and no exceedance: NA
        (18, 200.0, 13, Decimal("200.000000")),  # 13, max 200 > 160: valid
        (18, 161.0, 13, Decimal("161.000000")),  # 13, 161 > 160: valid
        (18, 160.5, 13, None),  # 13, 160.5 is published as 160 (half even): not > 160
        (19, 160.5, 14, Decimal("160.500000")),  # 14: valid whatever the value
    ],
)
def test_o3_daily_max_8h_14_windows_or_an_exceedance(
    mem: duckdb.DuckDBPyConnection,
    d: date,
    last_hour: int,
    o3: float,
    want_windows: int,
    want: Decimal | None,
) -> None:
    """HJ 663: valid with >= 14 valid 8h windows of the 17; with fewer, valid only when the highest
    window exceeds 160. Hourly O3 at D 01:00 .. last_hour (none on D-1): a window ending h has
    >= 6 values up to h = last_hour + 2, so 19 -> windows 08 .. 21 valid (14), 18 -> 13."""
    site = "WS-AIR-01"
    rs = hourly_constant(site, local(d.year, d.month, d.day, 1), last_hour, {"o3": o3})
    insert_readings(mem, rs)
    compute_air_range(mem, d, d, as_of=AS_OF)
    got = mem.execute(
        "select o3_8h_max_ugm3, count_o3_8h_windows from int.air_daily_station"
        " where site_id = ? and local_date = ?",
        [site, d],
    ).fetchone()
    assert got == (want, want_windows)
    ref = compute(rs, SITES, [d])
    assert to_dec(ref.daily[(site, d)]["o3_8h"]) == (None if want is None else Decimal(o3))


def _county_day(values: dict[str, float | None], d: date) -> list[Reading]:
    rs = []
    for site in ASSESSMENT:
        vals = {k: v for k, v in values.items() if v is not None}
        rs += hourly_constant(site, local(d.year, d.month, d.day) - timedelta(hours=23), 48, vals)
    return rs


@pytest.mark.parametrize(
    ("d", "o3", "iaqi_o3_8h"),
    [
        # 2012: O3 8h 900 > 800 -> the O3 1h IAQI: 1h 900 -> 300 + 100 x 100 / 200 = 350
        (date(2025, 6, 10), 900.0, 350),
        # 2026: O3 8h > 800 -> 300
        (date(2026, 6, 10), 900.0, 300),
    ],
)
def test_o3_8h_above_800(
    mem: duckdb.DuckDBPyConnection, d: date, o3: float, iaqi_o3_8h: int
) -> None:
    insert_readings(mem, _county_day(ZERO | {"o3": o3}, d))
    compute_air_range(mem, d, d, as_of=AS_OF)
    row = mem.execute(
        "select iaqi_o3_8h, aqi, primary_pollutants from kpi.air_daily where local_date = ?",
        [d],
    ).fetchone()
    assert row is not None and row[0] == iaqi_o3_8h and row[1] == iaqi_o3_8h


@pytest.mark.parametrize(
    ("d", "want"),
    [
        # 2012: SO2 1h > 800 -> IAQI of the SO2 24h (moving) mean 900: 200 + 100 x 100/800 -> 213
        (date(2025, 6, 10), 213),
        # 2026: SO2 1h > 800 -> 200
        (date(2026, 6, 10), 200),
    ],
)
def test_so2_1h_above_800_hourly(mem: duckdb.DuckDBPyConnection, d: date, want: int) -> None:
    insert_readings(mem, _county_day(ZERO | {"so2": 900.0}, d))
    compute_air_range(mem, d, d, as_of=AS_OF)
    got = mem.execute(
        "select distinct iaqi from int.air_iaqi where grain = 'hour' and scope = 'county'"
        " and input = 'so2_1h' and local_date = ?",
        [d],
    ).fetchall()
    assert got == [(want,)]
    aqi, primary = mem.execute(
        "select aqi, primary_pollutants from kpi.air_hourly where scope = 'county'"
        " and hour_end_local = ?",
        [datetime(d.year, d.month, d.day, 12)],
    ).fetchone()  # type: ignore[misc]
    assert (aqi, primary) == (want, "SO2")


@pytest.mark.parametrize(
    ("d", "pm25", "want_aqi", "valid", "excluded"),
    [
        # HJ 633-2012: the AQI of the available indicators is published, CO is NA, the day is
        # valid (and good when <= 100); only the 2026 rule withholds an AQI <= 100
        (date(2025, 6, 10), 200.0, 250, True, False),
        (date(2025, 6, 12), 30.0, 43, True, False),
        (date(2026, 6, 10), 200.0, 250, True, False),  # 2026: > 100 from the others: published
        (date(2026, 6, 12), 30.0, None, False, True),  # 2026: <= 100: NA, excluded day
    ],
)
def test_missing_pollutant_rule(
    mem: duckdb.DuckDBPyConnection,
    d: date,
    pm25: float,
    want_aqi: int | None,
    valid: bool,
    excluded: bool,
) -> None:
    insert_readings(mem, _county_day(ZERO | {"pm25": pm25, "co": None}, d))  # no CO at all
    compute_air_range(mem, d, d, as_of=AS_OF)
    row = mem.execute(
        "select aqi, is_valid_day, excluded_missing_pollutant, category_zh, is_good_day,"
        " aqi_available_max, co_mgm3, iaqi_co from kpi.air_daily where local_date = ?",
        [d],
    ).fetchone()
    assert row is not None
    assert row[:3] == (want_aqi, valid, excluded)
    assert (row[3] is None) == (want_aqi is None)
    assert row[4] == (want_aqi is not None and want_aqi <= 100)
    assert row[5] is not None
    assert row[6] is None and row[7] is None  # CO and its IAQI are NA
    # the year-to-date ratio counts the day as the published series does
    ytd = mem.execute(
        "select ytd_valid_days, ytd_good_days, ytd_excluded_days from kpi.air_good_days"
        " where local_date = ?",
        [d],
    ).fetchone()
    assert ytd == (int(valid), int(bool(row[4])), int(excluded))


def test_county_needs_three_of_four_stations(mem: duckdb.DuckDBPyConnection) -> None:
    d = date(2026, 6, 10)
    rs = []
    for site, pm in zip(ASSESSMENT[:3], (10.0, 20.0, 33.0), strict=True):
        rs += hourly_constant(site, local(2026, 6, 9, 1), 48, ZERO | {"pm25": pm})
    insert_readings(mem, rs)
    compute_air_range(mem, d, d, as_of=AS_OF)
    assert mem.execute(
        "select pm25_ugm3 from kpi.air_daily where local_date = ?", [d]
    ).fetchone() == (21.0,)
    mem.execute("delete from core.obs_air where site_id = ?", [ASSESSMENT[2]])
    compute_air_range(mem, d, d, as_of=AS_OF)
    assert mem.execute(
        "select pm25_ugm3, aqi, is_valid_day from kpi.air_daily where local_date = ?", [d]
    ).fetchone() == (None, None, False)


def test_late_evening_data_updates_the_next_days_moving_means(
    mem: duckdb.DuckDBPyConnection,
) -> None:
    """D+1's first 8h moving means (real-time AQI) read D's evening: recomputing D recomputes D+1
    as well. D+1's daily max 8h O3 does not move: its windows start at 08:00 (HJ 663)."""
    site = "WS-AIR-01"
    d = date(2026, 6, 10)
    rs = [
        Reading(site, local(2026, 6, 9, 1) + timedelta(hours=i), 3600, {"o3": 50.0})
        for i in range(72)
        if not (
            local(2026, 6, 10, 18)
            <= local(2026, 6, 9, 1) + timedelta(hours=i)
            <= local(2026, 6, 11, 0)
        )
    ]
    insert_readings(mem, rs)
    compute_air_range(mem, d, d + timedelta(days=1), as_of=AS_OF)
    late = [
        Reading(site, local(2026, 6, 10, 18) + timedelta(hours=i), 3600, {"o3": 250.0})
        for i in range(7)
    ]
    insert_readings(mem, late)
    compute_air_range(mem, d, d, as_of=AS_OF)  # a dirty-day run of D only
    moving = mem.execute(
        "select o3_8h_ugm3 from int.air_moving_station where site_id = ? and hour_end_local = ?",
        [site, datetime(2026, 6, 11, 1)],
    ).fetchone()
    # D+1's window ending 01:00 = D 18:00 .. D+1 01:00: 7 x 250 + 50 -> 225
    assert moving == (Decimal("225.000000"),)
    got = dict(
        mem.execute(
            "select local_date, o3_8h_max_ugm3 from int.air_daily_station where site_id = ?",
            [site],
        ).fetchall()
    )
    assert got[d + timedelta(days=1)] == Decimal("50.000000")


def test_county_mean_of_rounded_station_values_is_a_rule_parameter(
    mem: duckdb.DuckDBPyConnection, tmp_path, monkeypatch
) -> None:
    # Issue 9 item 4: by default the county value is the mean of the exact station means; with
    # county_mean_of_rounded it is the mean of the values as published (half-even integers).
    import shutil

    from common.settings import REPO_ROOT

    # PM2.5 daily means 10.5 and 12.5 publish as 10 and 12 (half-even), 11.0 twice as 11
    start = local(2026, 6, 10)
    means = {"WS-AIR-01": 10.5, "WS-AIR-02": 12.5, "WS-AIR-03": 11.0, "WS-AIR-04": 11.0}
    rs = [
        Reading(site, start + timedelta(hours=h), 3600, {**ZERO, "pm25": v})
        for site, v in means.items()
        for h in range(1, 25)
    ]
    insert_readings(mem, rs)
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    exact = mem.execute(
        "select pm25_ugm3 from int.air_daily_county where local_date = ?", [date(2026, 6, 10)]
    ).fetchone()[0]
    assert exact == Decimal("11.250000")  # (10.5 + 12.5 + 11 + 11) / 4

    # A deployment's own reference folder (CITYPIPE_REFERENCE_DIR) with the rule changed.
    shutil.copytree(REPO_ROOT / "reference", tmp_path / "reference")
    standards = tmp_path / "reference" / "standards"
    rules = standards / "aqi_rules.csv"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace(
            "county_mean_of_rounded,false", "county_mean_of_rounded,true"
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("CITYPIPE_REFERENCE_DIR", str(tmp_path / "reference"))
    compute_air_range(mem, date(2026, 6, 10), date(2026, 6, 10), as_of=AS_OF)
    rounded = mem.execute(
        "select pm25_ugm3 from int.air_daily_county where local_date = ?", [date(2026, 6, 10)]
    ).fetchone()[0]
    assert rounded == Decimal("11.000000")  # (10 + 12 + 11 + 11) / 4: half-even per station
