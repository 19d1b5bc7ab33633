"""The whole air chain (core.obs_air -> hourly -> daily -> county -> AQI -> marts) against the
independent reference implementation, on randomized multi-day data across 2026-03-01: minute
and hourly feeds, gaps, partial hours around the 45-minute rule, null channels, invalid rows,
micro-stations with extreme values. Run under two DuckDB session time zones."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import duckdb
import pytest
from support.air_helpers import AS_OF, SITES, insert_readings, local
from support.air_reference_impl import (
    CST,
    POLLUTANTS,
    Reading,
    compute,
    county_hourly,
    hourly_aqi,
    mean6,
)

from transforms.air import compute_air_range

DAYS = [date(2026, 2, 27) + timedelta(days=i) for i in range(4)]  # 2012 and 2026 rules
MINUTE_SITES = ("WS-AIR-01", "WS-AIR-02", "WS-AIR-M01", "WS-AIR-M02")
HOURLY_SITES = ("WS-AIR-03", "WS-AIR-04")


def _values(rng: random.Random, base: dict[str, float], hour: int) -> dict[str, float | None]:
    diurnal = 1 + 0.6 * (1 if 11 <= hour <= 17 else 0)
    v: dict[str, float | None] = {
        "pm25": float(max(0, round(base["pm25"] + rng.gauss(0, 8)))),
        "pm10": float(max(0, round(base["pm10"] + rng.gauss(0, 12)))),
        "so2": float(max(0, round(base["so2"] + rng.gauss(0, 3)))),
        "no2": float(max(0, round(base["no2"] + rng.gauss(0, 6)))),
        "co": max(0.0, round(base["co"] + rng.gauss(0, 0.2), 1)),
        "o3": float(max(0, round(base["o3"] * diurnal + rng.gauss(0, 10)))),
    }
    for p in POLLUTANTS:
        if rng.random() < 0.01:
            v[p] = None  # a failed channel
    return v


def generate(seed: int) -> list[Reading]:
    rng = random.Random(seed)
    readings: list[Reading] = []
    first = datetime(2026, 2, 26)
    for site in MINUTE_SITES + HOURLY_SITES:
        micro = "-M" in site
        for day_i in range(len(DAYS) + 1):
            base = {
                "pm25": rng.uniform(20, 95) * (4 if micro else 1),
                "pm10": rng.uniform(40, 160),
                "so2": rng.uniform(3, 30),
                "no2": rng.uniform(10, 60),
                "co": rng.uniform(0.3, 2.5),
                "o3": rng.uniform(40, 110),
            }
            bad_day = rng.random() < 0.1  # many missing hours: the 20-hour rule bites
            for hour in range(24):
                start = first + timedelta(days=day_i, hours=hour)
                if site in HOURLY_SITES:
                    if rng.random() < (0.3 if bad_day else 0.06):
                        continue
                    end = start + timedelta(hours=1)
                    readings.append(
                        Reading(site, end.replace(tzinfo=CST), 3600, _values(rng, base, hour))
                    )
                    continue
                mode = rng.random()
                if mode < (0.25 if bad_day else 0.05):
                    minutes: list[int] = []
                elif mode < 0.12:
                    minutes = rng.sample(range(60), rng.choice([30, 44, 45, 46]))
                else:
                    minutes = list(range(60))
                for m in minutes:
                    t = (start + timedelta(minutes=m)).replace(tzinfo=CST)
                    if rng.random() < 0.02:  # flagged reading: absurd values must not count
                        bad = dict.fromkeys(POLLUTANTS, 5000.0)
                        readings.append(Reading(site, t, 60, bad, is_valid=False))
                    else:
                        readings.append(Reading(site, t, 60, _values(rng, base, hour)))
    return readings


def _f(x: object) -> float | None:
    return None if x is None else float(x)  # type: ignore[arg-type]


def _close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) < 1e-6  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "session_tz"), [(1, "UTC"), (2, "America/Los_Angeles"), (3, "Asia/Tokyo")]
)
def test_chain_matches_reference(
    mem: duckdb.DuckDBPyConnection, seed: int, session_tz: str
) -> None:
    readings = generate(seed)
    insert_readings(mem, readings)
    mem.execute("set TimeZone = ?", [session_tz])
    assert mem.execute("select current_setting('TimeZone')").fetchone() == (session_tz,)
    compute_air_range(mem, DAYS[0], DAYS[-1], as_of=AS_OF)
    ref = compute(readings, SITES, DAYS)

    # hourly station means, every hour of the computed days
    got_hours = {
        (r[0], r[1]): r[2:]
        for r in mem.execute(
            "select site_id, hour_end_local, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3,"
            " o3_ugm3 from int.air_hourly_station where local_date between ? and ?",
            [DAYS[0], DAYS[-1]],
        ).fetchall()
    }
    assert len(got_hours) == len(SITES) * 24 * len(DAYS)
    n_valid_hours = 0
    for (site, h), vals in got_hours.items():
        want = ref.hourly.get((site, h), {})
        for p, v in zip(POLLUTANTS, vals, strict=True):
            assert _close(v, want.get(p)), (site, h, p, v, want.get(p))
            n_valid_hours += v is not None
    assert n_valid_hours > 1000

    # daily station values
    for r in mem.execute(
        "select site_id, local_date, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3,"
        " o3_8h_max_ugm3, o3_1h_max_ugm3 from int.air_daily_station"
    ).fetchall():
        want = ref.daily[(r[0], r[1])]
        keys = ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h")
        for k, v in zip(keys, r[2:], strict=True):
            assert _close(v, want[k]), (r[0], r[1], k, v, want[k])

    # county daily: concentrations, AQI, category, primary, flags
    rows = mem.execute(
        "select local_date, rule_set, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3,"
        " o3_8h_max_ugm3, o3_1h_max_ugm3, aqi, category_zh, primary_pollutants, is_valid_day,"
        " is_good_day, excluded_missing_pollutant, aqi_level from kpi.air_daily"
        " order by local_date"
    ).fetchall()
    assert [r[0] for r in rows] == DAYS
    for r in rows:
        d = r[0]
        want = ref.county[d]
        assert r[1] == ("HJ633-2026" if d >= date(2026, 3, 1) else "HJ633-2012")
        keys = ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h")
        for k, v in zip(keys, r[2:9], strict=True):
            assert _close(v, want[k]), (d, k, v, want[k])
        a = ref.county_aqi[d]
        assert (r[9], r[10], r[11], r[15]) == (a.aqi, a.category_zh, a.primary, a.level), (d, r, a)
        assert (r[12], r[13], r[14]) == (a.aqi is not None, a.is_good, a.excluded_missing)

    # station daily AQI (micro-stations included there, never in the county value)
    for site, d, aqi, primary in mem.execute(
        "select site_id, local_date, aqi, primary_pollutants from kpi.air_daily_station"
    ).fetchall():
        a = ref.station_aqi[(site, d)]
        assert (aqi, primary) == (a.aqi, a.primary), (site, d)

    # real-time AQI: county and stations
    assessment = [s for s, is_a in SITES.items() if is_a]
    n_published = 0
    for scope, h, aqi, primary, excluded in mem.execute(
        "select scope, hour_end_local, aqi, primary_pollutants, excluded_missing_pollutant"
        " from kpi.air_hourly"
    ).fetchall():
        d = (h - timedelta(hours=1)).date()
        if scope == "county":
            one, mov = county_hourly(ref, assessment, h)
        else:
            one = ref.hourly.get((scope, h), dict.fromkeys(POLLUTANTS))
            mov = {p: _moving(ref, scope, h, p) for p in ("pm25", "pm10", "so2")}
        a = hourly_aqi(d, one, mov)
        assert (aqi, primary, excluded) == (a.aqi, a.primary, a.excluded_missing), (scope, h)
        n_published += aqi is not None
    assert n_published > 100

    # the county mean used no micro-station: recomputing without them changes nothing
    good, valid = mem.execute(
        "select sum(is_good_day::int), sum(is_valid_day::int) from kpi.air_daily"
    ).fetchone()  # type: ignore[misc]
    assert good == sum(ref.county_aqi[d].is_good for d in DAYS)
    assert valid == sum(ref.county_aqi[d].aqi is not None for d in DAYS)


def _moving(ref: object, site: str, h: datetime, p: str) -> object:
    from support.air_reference_impl import moving24

    return moving24(ref, site, h, p)  # type: ignore[arg-type]


# Every air table a recompute rewrites, minus its computed_at stamp: a literal statement each.
SNAPSHOT_SQL: dict[str, str] = {
    "int.air_hourly_station": "select * from int.air_hourly_station",
    "int.air_moving_station": "select * from int.air_moving_station",
    "int.air_daily_station": "select * from int.air_daily_station",
    "int.air_iaqi": "select * from int.air_iaqi",
    "int.air_aqi": "select * from int.air_aqi",
    "kpi.air_daily": "select * exclude (computed_at) from kpi.air_daily",
    "kpi.air_hourly": "select * exclude (computed_at) from kpi.air_hourly",
    "kpi.air_good_days": "select * exclude (computed_at) from kpi.air_good_days",
    "kpi.air_annual": "select * exclude (computed_at) from kpi.air_annual",
}


def test_idempotent_recompute(mem: duckdb.DuckDBPyConnection) -> None:
    insert_readings(mem, generate(7))
    compute_air_range(mem, DAYS[0], DAYS[-1], as_of=AS_OF)

    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        return {t: sorted(mem.execute(sql).fetchall(), key=repr) for t, sql in SNAPSHOT_SQL.items()}

    before = snapshot()
    compute_air_range(mem, DAYS[1], DAYS[2], as_of=AS_OF)
    compute_air_range(mem, DAYS[0], DAYS[-1], as_of=AS_OF)
    assert snapshot() == before


def test_micro_stations_never_enter_the_county_value(mem: duckdb.DuckDBPyConnection) -> None:
    d = date(2026, 6, 10)
    rs = []
    for site in ("WS-AIR-01", "WS-AIR-02", "WS-AIR-03", "WS-AIR-04", "WS-AIR-M01"):
        pm = 500.0 if "-M" in site else 30.0
        vals = {"pm25": pm, "pm10": 50.0, "so2": 5.0, "no2": 20.0, "co": 0.5, "o3": 60.0}
        for i in range(48):
            rs.append(Reading(site, local(2026, 6, 9, 1) + timedelta(hours=i), 3600, dict(vals)))
    insert_readings(mem, rs)
    compute_air_range(mem, d, d, as_of=AS_OF)
    pm25, aqi = mem.execute(
        "select pm25_ugm3, aqi from kpi.air_daily where local_date = ?", [d]
    ).fetchone()  # type: ignore[misc]
    assert pm25 == 30.0
    micro = mem.execute(
        "select aqi from kpi.air_daily_station where site_id = 'WS-AIR-M01' and local_date = ?",
        [d],
    ).fetchone()
    assert micro == (500,)
    assert aqi < 100


def test_mean6_reference_rounding() -> None:
    from fractions import Fraction

    assert mean6([Fraction(1), Fraction(2)]) == Fraction(3, 2)
    assert mean6([Fraction(0), Fraction(0), Fraction(1)]) == Fraction(333333, 1000000)
