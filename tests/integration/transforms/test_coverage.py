"""Issue 7 finding 4: coverage counts expected result slots, never readings, so off-schedule
extra readings cannot lift a site past 100 % or cover for a silent site in a county figure."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb

from transforms.traffic import compute_traffic_range
from transforms.water import compute_water_range
from transforms.waterlogging import compute_waterlogging_range

CST = timezone(timedelta(hours=8))
GOOD = {"ph": 7.5, "do_mgl": 8.0, "codmn_mgl": 1.5, "nh3n_mgl": 0.1, "tp_mgl": 0.01}


def _half_even_1dp(n: int, d: int) -> float:
    q, r = divmod(1000 * n, d)
    return (q + (1 if 2 * r > d or (2 * r == d and q % 2) else 0)) / 10


def test_off_schedule_water_readings_do_not_exceed_100_pct(wh, insert_obs, day: date) -> None:
    base = datetime(day.year, day.month, day.day, tzinfo=CST)
    on = [base + timedelta(hours=4 * i) for i in range(6)]
    extra = [base + timedelta(hours=4 * i, minutes=77) for i in range(4)]  # 4 off schedule
    insert_obs(
        "water",
        [{"site_id": "WS-WAT-01", "observed_at": t, "period_s": 14400, **GOOD} for t in on + extra],
    )
    compute_water_range(wh, day, day)
    n, expected, pct = wh.execute(
        "select n_results, expected_results, coverage_pct from kpi.water_period_section"
        " where site_id = 'WS-WAT-01' and as_of_date = ? and period = 'day'",
        [day],
    ).fetchone()
    assert (n, expected, pct) == (6, 6, 100.0)  # was 10 of 6: 166.7 %
    n_sections = wh.execute(
        "select count(*) from core.dim_site where kind = 'water_section'"
    ).fetchone()[0]
    county = wh.execute(
        "select coverage_pct from kpi.water_daily"
        " where local_date = ? and period = 'day' and scope = 'sections'",
        [day],
    ).fetchone()[0]
    assert county == _half_even_1dp(6, 6 * n_sections)


def test_extra_readings_in_half_the_slots_are_half_coverage(wh, insert_obs, day: date) -> None:
    # Three of six slots filled, each three times over: 50 %, not 150 %.
    base = datetime(day.year, day.month, day.day, tzinfo=CST)
    rows = [
        {"site_id": "WS-WAT-02", "observed_at": base + timedelta(hours=4 * i, minutes=-m),
         "period_s": 14400, **GOOD}
        for i in (1, 2, 3) for m in (0, 30, 90)
    ]  # fmt: skip
    insert_obs("water", rows)
    compute_water_range(wh, day, day)
    got = wh.execute(
        "select n_results, coverage_pct from kpi.water_period_section"
        " where site_id = 'WS-WAT-02' and as_of_date = ? and period = 'day'",
        [day],
    ).fetchone()
    assert got == (3, 50.0)


def test_waterlogging_extra_readings_do_not_hide_a_silent_point(
    wh: duckdb.DuckDBPyConnection, insert_obs, day: date
) -> None:
    base = datetime(day.year, day.month, day.day, tzinfo=CST)
    full = [base + timedelta(minutes=i + 1) for i in range(1440)]
    extra = [base + timedelta(minutes=i, seconds=30) for i in range(1440)]  # twice a minute
    insert_obs(
        "waterlogging",
        [{"site_id": "WS-WLG-01", "observed_at": t, "depth_cm": 0.0} for t in full + extra],
    )
    compute_waterlogging_range(wh, day, day)
    n_points = wh.execute(
        "select count(*) from core.dim_site where kind = 'waterlogging_point'"
    ).fetchone()[0]
    county = wh.execute(
        "select coverage_pct from kpi.waterlogging_daily where local_date = ? and scope = 'county'",
        [day],
    ).fetchone()[0]
    # One point of n_points reports (fully); the others are silent.
    assert county == round(100 / n_points, 1)
    gaotang = wh.execute(
        "select coverage_pct, n_points from kpi.waterlogging_daily"
        " where local_date = ? and scope = 'gaotang'",
        [day],
    ).fetchone()
    assert gaotang[0] == round(100 / gaotang[1], 1)


def test_traffic_extra_readings_fill_only_their_own_hour(
    wh: duckdb.DuckDBPyConnection, insert_obs, day: date
) -> None:
    lanes = wh.execute("select lanes from core.dim_site where site_id = 'WS-TRF-01'").fetchall()[0][
        0
    ]
    base = datetime(day.year, day.month, day.day, 8, tzinfo=CST)
    rows = [
        {"site_id": "WS-TRF-01", "observed_at": base + timedelta(minutes=m), "period_s": 300,
         "lane": lane, "volume_veh": 10.0, "speed_kmh": 40.0, "occupancy_pct": 10.0}
        for lane in range(1, lanes + 1) for m in range(60)  # every minute: 12x the schedule
    ]  # fmt: skip
    insert_obs("traffic", rows)
    compute_traffic_range(wh, day, day)
    expected_day = wh.execute(
        "select sum(lanes * len(device_ids) * 86400 // period_s) from core.dim_site"
        " where kind = 'traffic_detector'"
    ).fetchone()[0]
    county = wh.execute(
        "select coverage_pct from kpi.traffic_daily where local_date = ? and scope = 'county'",
        [day],
    ).fetchone()[0]
    assert county == round(100 * lanes * 12 / expected_day, 1)  # one detector-hour's worth
