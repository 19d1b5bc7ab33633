"""Traffic: congestion-level boundaries by road class, space-mean speed over lanes, TTI and the
TPI mapping points, VKT weighting, old town vs other districts, peak-hour TPI."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from transforms.traffic import compute_traffic_range

# The KPI models on the single file and on DuckLake-on-PostgreSQL (issue 10).
pytestmark = pytest.mark.backends("file", "postgres")

CST = timezone(timedelta(hours=8))
ARTERIAL = "WS-TRF-01"  # arterial, gaotang (old town), free flow 50, 0.61 km
EXPRESSWAY = "WS-TRF-33"  # expressway, zaoyang, free flow 100, 2.34 km
ZAOYANG_ARTERIAL = "WS-TRF-14"  # arterial, zaoyang, free flow 60, 0.93 km
BRANCH = "WS-TRF-12"  # branch, gaotang, free flow 35


def reading(site: str, d: date, h: int, m: int, volume: float, speed: float, lane: int = 1):
    return {
        "site_id": site,
        "observed_at": datetime(d.year, d.month, d.day, h, m, tzinfo=CST),
        "period_s": 300,
        "lane": lane,
        "volume_veh": volume,
        "speed_kmh": speed,
        "occupancy_pct": 10.0,
    }


def detector_hour(con: duckdb.DuckDBPyConnection, site: str, d: date, h: int) -> tuple:
    return con.execute(
        "select speed_kmh, congestion_level, tti from int.traffic_hourly_detector"
        " where site_id = ? and local_date = ? and hour(hour_start) = ?",
        [site, d, h],
    ).fetchone()


# Boundary tables: the same SQL per case, so they run on the file only (PostgreSQL setup costs
# ~7 s a case; every case passed there once, 2026-12-07).
@pytest.mark.backends("file")
@pytest.mark.parametrize(
    ("site", "speed", "level"),
    [
        (ARTERIAL, 40.01, "free"),
        (ARTERIAL, 40.0, "basically_free"),
        (ARTERIAL, 30.0, "light"),
        (ARTERIAL, 20.0, "moderate"),
        (ARTERIAL, 15.01, "moderate"),
        (ARTERIAL, 15.0, "heavy"),
        (EXPRESSWAY, 65.01, "free"),
        (EXPRESSWAY, 65.0, "basically_free"),
        (EXPRESSWAY, 50.0, "light"),
        (EXPRESSWAY, 35.0, "moderate"),
        (EXPRESSWAY, 20.0, "heavy"),
        (BRANCH, 35.0, "basically_free"),
        (BRANCH, 25.0, "light"),
        (BRANCH, 10.01, "moderate"),
        (BRANCH, 10.0, "heavy"),
    ],
)
def test_congestion_level_boundaries(
    wh, insert_obs, day: date, site: str, speed: float, level: str
) -> None:
    insert_obs("traffic", [reading(site, day, 10, 5, 12, speed)])
    compute_traffic_range(wh, day, day)
    assert detector_hour(wh, site, day, 10)[:2] == (speed, level)


def test_space_mean_speed_over_lanes(wh, insert_obs, day: date) -> None:
    insert_obs(
        "traffic",
        [
            reading(ARTERIAL, day, 10, 5, 30, 60.0, lane=1),
            reading(ARTERIAL, day, 10, 5, 10, 20.0, lane=2),
            reading(ARTERIAL, day, 10, 10, 0, 0.0, lane=3),  # no vehicles: no speed
        ],
    )
    compute_traffic_range(wh, day, day)
    # 40 vehicles over 30/60 + 10/20 = 1 vehicle-hour per km -> 40 km/h (arithmetic would say 50)
    speed, level, tti = detector_hour(wh, ARTERIAL, day, 10)
    assert (speed, level, tti) == (40.0, "basically_free", 1.25)


def test_reading_stamped_on_the_hour_ends_the_previous_hour(wh, insert_obs, day: date) -> None:
    # Issue 9 item 6: observed_at ends the 5-minute interval, so 09:00 covers 08:55-09:00.
    insert_obs(
        "traffic", [reading(ARTERIAL, day, 9, 0, 30, 25.0), reading(ARTERIAL, day, 0, 0, 9, 25.0)]
    )
    compute_traffic_range(wh, day, day)
    hours = wh.execute(
        "select local_date, hour(hour_start), n_rows from int.traffic_hourly_detector"
        " where site_id = ? order by hour_start",
        [ARTERIAL],
    ).fetchall()
    # 00:00 of day D ends D-1's last hour: outside the computed day
    assert hours == [(day, 8, 1)]


@pytest.mark.backends("file")  # a boundary table, as above
@pytest.mark.parametrize(
    ("speed", "tti", "tpi", "level"),
    [
        (100.0, 1.0, 0.0, "free"),
        (120.0, 1.0, 0.0, "free"),  # faster than free flow: TTI floored at 1
        (80.0, 1.25, 2.33, "basically_free"),
        (83.33, 1.2, 2.0, "basically_free"),  # e = 0.2 -> TPI 2 starts the second level
        (66.67, 1.4999, 4.0, "light"),  # e = 0.5 -> 4 (after rounding to 0.01)
        (62.5, 1.6, 4.67, "light"),
        (55.56, 1.7999, 6.0, "moderate"),  # e = 0.8 -> 6
        (50.0, 2.0, 7.33, "moderate"),
        (47.62, 2.1, 8.0, "heavy"),  # e = 1.1 -> 8
        (41.67, 2.3998, 10.0, "heavy"),  # e = 1.4 -> 10
        (25.0, 4.0, 10.0, "heavy"),  # capped at 10
    ],
)
def test_tpi_mapping(
    wh, insert_obs, day: date, speed: float, tti: float, tpi: float, level: str
) -> None:
    insert_obs("traffic", [reading(EXPRESSWAY, day, 12, 0, 50, speed)])
    compute_traffic_range(wh, day, day)
    row = wh.execute(
        "select tti, tpi, tpi_level from kpi.traffic_hourly where scope = 'county'"
    ).fetchone()
    assert row == (tti, tpi, level)


def test_vkt_weighting_scopes_and_peaks(wh, insert_obs, day: date) -> None:
    rows = []
    # 07:05 (the 07 hour), 08:05 (the 08 hour; 08:00 would end the 07 hour) and 17/18:
    # old-town arterial TTI 2, zaoyang arterial TTI 1.
    for h, m in ((7, 5), (8, 5), (17, 30), (18, 55), (12, 5)):
        rows.append(reading(ARTERIAL, day, h, m, 100, 25.0))
        rows.append(reading(ZAOYANG_ARTERIAL, day, h, m, 200, 60.0))
    rows.append(reading(BRANCH, day, 22, 0, 1, 12.0))
    insert_obs("traffic", rows)
    compute_traffic_range(wh, day, day)
    hourly = wh.execute(
        "select scope, hour(hour_start), hour(hour_end), peak_period, tti, vkt"
        " from kpi.traffic_hourly where hour(hour_start) = 8 order by scope"
    ).fetchall()
    county_tti = round((2 * 100 * 0.61 + 1 * 200 * 0.93) / (100 * 0.61 + 200 * 0.93), 4)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in hourly] == [
        ("county", 8, 9, "am", county_tti),
        ("gaotang", 8, 9, "am", 2.0),
        ("old_town", 8, 9, "am", 2.0),
        ("other_districts", 8, 9, "am", 1.0),
        ("zaoyang", 8, 9, "am", 1.0),
    ]
    daily = {
        r[0]: r[1:]
        for r in wh.execute(
            "select scope, peak_tpi, am_peak_tpi, pm_peak_tpi, hours_moderate_or_heavy,"
            " detector_hours_moderate_or_heavy from kpi.traffic_daily"
        ).fetchall()
    }
    # TTI 2 -> e = 1 -> TPI 7.33 (moderate) in every hour of the old town.
    assert daily["old_town"] == (7.33, 7.33, 7.33, 6, 1)  # 22:00 branch road: TPI 10
    assert daily["other_districts"] == (0.0, 0.0, 0.0, 0, 0)
    # County TTI 1.247 -> e = 0.247 -> TPI 2 + 2 x 0.047 / 0.3 = 2.31. 25 km/h on an arterial is
    # light congestion: the only congested detector-hour is the branch road at 12 km/h.
    assert daily["county"] == (2.31, 2.31, 2.31, 1, 1)  # 22:00: only the branch road
    assert daily["gaotang"][4] == 1
    peak_hours = wh.execute(
        "select count(*) from kpi.traffic_hourly where scope = 'county' and peak_period is not null"
    ).fetchone()
    assert peak_hours == (4,)


def test_peak_tpi_weights_tti_by_vkt(wh, insert_obs, day: date) -> None:
    # Standards §6: peak TTI = sum(TTI x VKT) / sum(VKT) over the peak hours and the scope's
    # detectors, then mapped to TPI. TTI 1.1 with VKT 61 and TTI 1.9 with VKT 610 -> TTI 1.8273
    # -> TPI 6 + 2 x 0.0273 / 0.3 = 6.18 (moderate); a mean of the hourly TPIs gave 3.83.
    rows = []
    for h_light, h_heavy in ((7, 8), (17, 18)):
        rows.append(reading(ARTERIAL, day, h_light, 30, 100, 50 / 1.1))
        rows.append(reading(ARTERIAL, day, h_heavy, 30, 1000, 50 / 1.9))
    insert_obs("traffic", rows)
    compute_traffic_range(wh, day, day)
    tti = wh.execute(
        "select hour(hour_start), tti, vkt from kpi.traffic_hourly"
        " where scope = 'old_town' order by 1"
    ).fetchall()
    # (speeds are stored to 2 decimals: TTI 1.1001 and 1.8997)
    assert [(h, round(t, 3), v) for h, t, v in tti] == [
        (7, 1.1, 61.0), (8, 1.9, 610.0), (17, 1.1, 61.0), (18, 1.9, 610.0),
    ]  # fmt: skip
    daily = wh.execute(
        "select scope, peak_tpi, peak_level, am_peak_tpi, pm_peak_tpi from kpi.traffic_daily"
        " where scope in ('old_town', 'county') order by scope"
    ).fetchall()
    assert daily == [
        ("county", 6.18, "moderate", 6.18, 6.18),
        ("old_town", 6.18, "moderate", 6.18, 6.18),
    ]
