"""The alerts' hourly AQI (reference CSVs) against the project's independent reference
implementation and the standards' reference values; and the hourly AQI rule of the engine."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from support import air_reference_impl as oracle

from alerts import aqi
from alerts.rules import Engine, Observation
from common.catalogue import Catalogue
from common.settings import REPO_ROOT

RULE_SETS = aqi.load_rule_sets(REPO_ROOT / "reference")


@pytest.mark.parametrize("day", [date(2025, 12, 1), date(2026, 7, 1)])
def test_hourly_aqi_matches_the_reference_implementation(day: date) -> None:
    rs = aqi.rule_set_for(RULE_SETS, day)
    grid = {
        "pm25": [0, 35, 60, 75, 151.4, 260, 600],
        "so2": [7, 800, 801, 900],
        "co": [0.7, 10.05, 200],
        "o3": [61, 160, 401],
    }
    for pm25, so2, co, o3 in itertools.product(*grid.values()):
        one_hour = {
            "pm25": Fraction(pm25).limit_denominator(1000),
            "pm10": Fraction(pm25 * 1.6).limit_denominator(1000),
            "so2": Fraction(so2),
            "no2": Fraction(24),
            "co": Fraction(co).limit_denominator(1000),
            "o3": Fraction(o3),
        }
        moving = {"so2": Fraction(120)}
        want = oracle.hourly_aqi(day, one_hour, moving)
        got = aqi.hourly_aqi(
            rs, {**{f"{p}_1h": v for p, v in one_hour.items()}, "so2_24h_moving": moving["so2"]}
        )
        assert got.aqi == want.aqi, (day, one_hour)


def test_breakpoint_values_of_the_standard() -> None:
    rs12 = aqi.rule_set_for(RULE_SETS, date(2025, 1, 1))
    rs26 = aqi.rule_set_for(RULE_SETS, date(2026, 3, 1))
    assert (rs12.name, rs26.name) == ("HJ633-2012", "HJ633-2026")
    # standards.md 1.5
    assert rs12.iaqi("pm25", "24h", Fraction(60)) == 82
    assert rs26.iaqi("pm25", "24h", Fraction(60)) == 100
    assert rs12.iaqi("pm10", "24h", Fraction(130)) == 90
    assert rs26.iaqi("pm10", "24h", Fraction(130)) == 104
    assert rs12.iaqi("co", "24h", Fraction(5, 2)) == 63
    assert rs12.iaqi("pm25", "24h", Fraction(150)) == 200  # on a breakpoint: exactly


def test_an_hour_above_200_raises_when_the_hour_closes(catalogue: Catalogue) -> None:
    station = next(s for s in catalogue.by_kind("air_station") if s.get("is_assessment"))
    micro = next(s for s in catalogue.by_kind("air_station") if not s.get("is_assessment"))
    t0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    e = Engine(catalogue, REPO_ROOT / "reference", now=t0)

    def minute(site: str, k: int, pm25: float) -> Observation:
        at = t0 + timedelta(minutes=k)
        values: dict[str, float | None] = {
            "pm25_ugm3": pm25, "pm10_ugm3": pm25 * 1.3, "so2_ugm3": 7.0,
            "no2_ugm3": 24.0, "co_mgm3": 0.7, "o3_ugm3": 61.0,
        }  # fmt: skip
        return Observation("air", site, "dev", at, 60, values, "", at)

    changes = []
    # hour 1: PM2.5 160 (IAQI 210); only 40 minutes in hour 2 (not valid); hour 3: 40 (clean)
    for k in range(1, 61):
        changes += e.observe(minute(station.site_id, k, 160.0))
        assert e.observe(minute(micro.site_id, k, 160.0)) == []
    assert changes == []  # the hour is still open
    changes += e.observe(minute(station.site_id, 61, 160.0))  # a reading of the next hour
    assert [(c.action, c.alert.kind, c.alert.value) for c in changes] == [("raise", "aqi", 210.0)]
    assert changes[0].alert.started_at == t0 + timedelta(hours=1)
    assert changes[0].alert.channel == "PM2.5"
    later = []
    for k in range(62, 101):  # hour 2: 40 minutes only, not valid (>= 45 needed)
        later += e.observe(minute(station.site_id, k, 40.0))
    for k in range(121, 181):  # hour 3: clean, the first of the two needed to clear
        later += e.observe(minute(station.site_id, k, 40.0))
    for k in range(181, 241):  # hour 4: clean; it closes when the station has been quiet
        later += e.observe(minute(station.site_id, k, 40.0))
    assert [c for c in later if c.alert.kind == "aqi"] == []
    end = t0 + timedelta(minutes=240)
    assert [c for c in e.tick(end + timedelta(seconds=60)) if c.alert.kind == "aqi"] == []
    closed = [c for c in e.tick(end + timedelta(seconds=120)) if c.alert.kind == "aqi"]
    assert [(c.action, c.alert.id) for c in closed] == [("clear", changes[0].alert.id)]
    assert closed[0].alert.cleared_at == end
