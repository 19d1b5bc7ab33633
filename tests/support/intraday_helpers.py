"""Landing data for the intraday tests: a few air stations with values that move from hour to
hour (so hourly AQIs and categories differ), two waterlogging points (one event closed, one
still open at the end of the data) and two traffic detectors. Landed as the ingest service
lands them, then loaded by the real load chain (``support.serving_helpers.load``)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from common.settings import Settings
from support.air_reference_impl import COLUMN, POLLUTANTS, Reading
from support.wh_factory import SHANGHAI, reading, write_landing

# (site, device, is_assessment, level factor): the stations differ, so the county mean is not
# any one station's value.
AIR_STATIONS = (
    ("WS-AIR-01", "AQM-0101", True, 1.0),
    ("WS-AIR-02", "AQM-0201", True, 1.3),
    ("WS-AIR-03", "AQM-0301", True, 0.8),
    ("WS-AIR-04", "AQM-0401", True, 1.6),
    ("WS-AIR-M01", "MIC-0101", False, 2.2),
)
WET_CLOSED = ("WS-WLG-01", "WLG-0101")
WET_OPEN = ("WS-WLG-02", "WLG-0201")
DETECTORS = (("WS-TRF-01", "TRF-0101"), ("WS-TRF-02", "TRF-0201"))


def local(d: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI) + timedelta(hours=hour, minutes=minute)


def _air_values(i: int, factor: float) -> dict[str, float]:
    """Smooth daily cycles with a little minute-to-minute wobble (never flat for 2 hours,
    never a spike); PM2.5 stays below PM10."""
    phase = 2 * math.pi * (i % 1440) / 1440
    wobble = (i % 7) * 0.3
    pm25 = factor * (45 + 40 * math.sin(phase)) + wobble
    return {
        "pm25_ugm3": round(pm25, 1),
        "pm10_ugm3": round(pm25 * 1.6 + 5, 1),
        "so2_ugm3": round(factor * (8 + 3 * math.cos(phase)) + wobble, 1),
        "no2_ugm3": round(factor * (30 + 20 * math.sin(phase + 1)) + wobble, 1),
        "co_mgm3": round(factor * (0.6 + 0.3 * math.sin(phase)) + wobble / 10, 2),
        "o3_ugm3": round(factor * (70 + 60 * math.sin(phase - 1.5)) + wobble, 1),
    }


def land(settings: Settings, first: datetime, until: datetime) -> None:
    """Readings observed in (first, until] of every feed the intraday run reads."""
    minutes = int((until - first).total_seconds() // 60)
    air: list[dict[str, Any]] = []
    for site, dev, _is_assessment, factor in AIR_STATIONS:
        for i in range(1, minutes + 1):
            t = first + timedelta(minutes=i)
            air.append(
                reading("air", t, site_id=site, device_id=dev, seq=i, **_air_values(i, factor))
            )
    wet: list[dict[str, Any]] = []
    for (site, dev), (wet_from, wet_to) in (
        (WET_CLOSED, (until - timedelta(hours=5), until - timedelta(hours=3))),
        (WET_OPEN, (until - timedelta(minutes=50), until + timedelta(hours=1))),
    ):
        for i in range(1, minutes + 1):
            t = first + timedelta(minutes=i)
            depth = 0.0
            if wet_from < t <= wet_to:
                # up to 31 cm (above the closure level) and down again
                depth = round(16 + 15 * math.sin(math.pi * (t - wet_from) / (wet_to - wet_from)), 1)
            wet.append(
                reading("waterlogging", t, site_id=site, device_id=dev, seq=i, depth_cm=depth)
            )
    traffic: list[dict[str, Any]] = []
    for k, (site, dev) in enumerate(DETECTORS):
        for i in range(1, minutes // 5 + 1):
            t = first + timedelta(minutes=5 * i)
            hour = t.astimezone(SHANGHAI).hour
            speed = 22.0 + 3 * k if hour in (7, 8, 17, 18) else 41.0 - 2 * k
            traffic.append(
                reading("traffic", t, site_id=site, device_id=dev, seq=i, speed_kmh=speed + (i % 3))
            )
    for feed, rows in (("air", air), ("waterlogging", wet), ("traffic", traffic)):
        write_landing(settings.home, feed, rows)


def air_readings(con: duckdb.DuckDBPyConnection, until: datetime) -> list[Reading]:
    """The stored air readings up to ``until`` as the reference implementation takes them: a
    value a check invalidated is absent, a reading invalid as a whole is marked so."""
    rows = con.execute(
        "select site_id, observed_at, period_s, is_valid, invalid_columns, pm25_ugm3,"
        " pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3 from core.obs_air"
        " where observed_at <= ?",
        [until],
    ).fetchall()
    out = []
    for site, t, period, is_valid, invalid, *vals in rows:
        bad = set(invalid or [])
        values = {
            p: (None if COLUMN[p] in bad else v) for p, v in zip(POLLUTANTS, vals, strict=True)
        }
        out.append(Reading(site, t.astimezone(UTC), period, values, bool(is_valid)))
    return out
