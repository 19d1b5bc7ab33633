"""A warehouse for the dashboard's browser test and benchmark, made as the serving tests make
theirs (landing Parquet, the real load chain and KPI run: ``serving_helpers.build``), with enough
sites and variation that every tile and chart has something to show:

- the day before ``day`` a good air day, ``day`` itself a lightly polluted one (three assessment
  stations, values that vary minute by minute so no flat-line or spike rule fires);
- river sections of Class II, III and IV and three drinking-water sources, one of them failing;
- a waterlogging event on ``day`` (a point rising to 32 cm in the afternoon), another point wet
  a few centimetres, a third dry;
- an old-town and two other-district detectors with moderate congestion in the peak hours;
- optionally the first hours of the day after ``day`` at the air stations, and the ingest DAG's
  intra-day run over them (``transforms.intraday``): the open day's provisional hourly AQI.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from common.catalogue import load_catalogue
from common.settings import Settings
from support.serving_helpers import build, day_start
from support.wh_factory import reading, write_landing
from transforms.intraday import compute_intraday

AIR_STATIONS = ("WS-AIR-02", "WS-AIR-03", "WS-AIR-04")
# site -> values giving the class named in the comment (rivers; GB 3838 Table 1)
SECTIONS = {
    "WS-WAT-02": {"do_mgl": 8.0, "codmn_mgl": 2.6, "nh3n_mgl": 0.30, "tp_mgl": 0.05},  # II
    "WS-WAT-04": {"do_mgl": 6.5, "codmn_mgl": 3.5, "nh3n_mgl": 0.80, "tp_mgl": 0.08},  # III
    "WS-WAT-05": {"do_mgl": 5.5, "codmn_mgl": 8.0, "nh3n_mgl": 0.60, "tp_mgl": 0.12},  # IV
    "WS-DWS-01": {"do_mgl": 7.8, "codmn_mgl": 2.8, "nh3n_mgl": 0.25, "tp_mgl": 0.05},  # II
    "WS-DWS-02": {"do_mgl": 6.8, "codmn_mgl": 4.5, "nh3n_mgl": 0.70, "tp_mgl": 0.10},  # III
    "WS-DWS-04": {"do_mgl": 6.0, "codmn_mgl": 5.0, "nh3n_mgl": 1.30, "tp_mgl": 0.15},  # IV: fails
}
EVENT_POINT = "WS-WLG-02"
WET_POINT = "WS-WLG-03"
DRY_POINT = "WS-WLG-05"
DETECTORS = ("WS-TRF-02", "WS-TRF-14", "WS-TRF-28")  # old town, Zaoyang, Longjiang
PEAK_HOURS = (7, 8, 17, 18)


def _device(site_id: str, settings: Settings) -> str:
    site = load_catalogue(settings.reference_dir, settings.city).sites[site_id]
    return site.device_ids[0]


def _wave(i: int, period: float, phase: float = 0.0) -> float:
    return math.sin(2 * math.pi * i / period + phase)


def _air(day: date, polluted: bool, settings: Settings, hours: int = 24) -> list[dict[str, Any]]:
    start = day_start(day)
    rows = []
    for k, site in enumerate(AIR_STATIONS):
        device = _device(site, settings)
        for i in range(hours * 60):
            jitter = ((i * 37 + k * 11) % 7 - 3) * 0.3
            pm25 = (82.0 if polluted else 27.0) + 6 * _wave(i, 173, k) + jitter
            rows.append(
                reading(
                    "air",
                    start + timedelta(minutes=i + 1),
                    site_id=site,
                    device_id=device,
                    seq=i + 1,
                    pm25_ugm3=round(pm25, 1),
                    pm10_ugm3=round(pm25 * 1.6 + jitter, 1),
                    so2_ugm3=round(7 + _wave(i, 97, k) + jitter / 3, 1),
                    no2_ugm3=round(24 + 5 * _wave(i, 211, k) + jitter, 1),
                    co_mgm3=round(0.7 + 0.1 * _wave(i, 131, k), 2),
                    o3_ugm3=round(60 + 25 * _wave(i, 1440, -math.pi / 2) + jitter, 1),
                )
            )
    return rows


def _water(day: date, settings: Settings) -> list[dict[str, Any]]:
    start = day_start(day)
    rows = []
    for k, (site, values) in enumerate(SECTIONS.items()):
        device = _device(site, settings)
        for i in range(6):
            n = day.toordinal() * 6 + i + k  # differs from result to result and day to day
            wobble = ((n * 7) % 5 - 2) * 0.01
            rows.append(
                reading(
                    "water",
                    start + timedelta(hours=4 * i),
                    site_id=site,
                    device_id=device,
                    seq=n,
                    ph=round(7.6 + wobble, 2),
                    conductivity_uscm=round(350 + 100 * wobble, 1),
                    **{c: round(v * (1 + wobble), 3) for c, v in values.items()},
                )
            )
    return rows


def _waterlogging(
    day: date, event: bool, settings: Settings, hours: int = 24, event_hour: int = 14
) -> list[dict[str, Any]]:
    start = day_start(day)
    rows = []
    for site in (EVENT_POINT, WET_POINT, DRY_POINT):
        device = _device(site, settings)
        for i in range(hours * 60):
            depth = 0.0
            if site == WET_POINT:
                depth = round(3 + _wave(i, 97), 1)
            elif site == EVENT_POINT and event and event_hour * 60 <= i < (event_hour + 2) * 60:
                # rises 0.8 cm a minute to 32 cm in 40 minutes, then drains 0.4 cm a minute
                m = i - event_hour * 60
                depth = round(min(0.8 * m, 32.0) if m < 40 else max(32.0 - 0.4 * (m - 40), 0.0), 1)
            rows.append(
                reading(
                    "waterlogging",
                    start + timedelta(minutes=i + 1),
                    site_id=site,
                    device_id=device,
                    seq=i + 1,
                    depth_cm=depth,
                    rain_mm=0.4 if depth > 0 else 0.0,
                )
            )
    return rows


def _traffic(day: date, settings: Settings) -> list[dict[str, Any]]:
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    start = day_start(day)
    rows = []
    for k, site in enumerate(DETECTORS):
        free_kmh = float(catalogue.sites[site].attrs["free_flow_kmh"])
        device = _device(site, settings)
        for lane in (1, 2):
            for i in range(288):
                hour = (i * 5) // 60
                # peak speeds give TTI about 2 (TPI 6-8, moderate); the old town slower
                share = (0.48 if k == 0 else 0.6) if hour in PEAK_HOURS else 0.85
                speed = free_kmh * share * (1 + 0.02 * _wave(i, 17, lane + k))
                rows.append(
                    reading(
                        "traffic",
                        start + timedelta(minutes=5 * (i + 1)),
                        site_id=site,
                        device_id=device,
                        lane=lane,
                        seq=i + 1,
                        speed_kmh=round(speed, 1),
                        volume_veh=float(40 + (i * 13 + lane) % 9),
                        occupancy_pct=round(9 + 8 * (1 - share), 1),
                    )
                )
    return rows


def build_dashboard(settings: Settings, day: date, open_hours: int = 0) -> None:
    """Land ``day`` − 1 and ``day`` (see the module doc), then load and compute both; with
    ``open_hours``, also that many hours of air and waterlogging readings of ``day`` + 1 (an
    event 3 hours before their end, still draining) and the intra-day run
    as of 5 minutes after them (``day`` + 1 must then be in the past: the readings are real)."""
    for d, last in ((day - timedelta(days=1), False), (day, True)):
        write_landing(settings.home, "air", _air(d, polluted=last, settings=settings))
        write_landing(settings.home, "water", _water(d, settings))
        write_landing(settings.home, "waterlogging", _waterlogging(d, last, settings))
        write_landing(settings.home, "traffic", _traffic(d, settings))
    open_day = day + timedelta(days=1)
    if open_hours:
        write_landing(settings.home, "air", _air(open_day, False, settings, hours=open_hours))
        wet = _waterlogging(open_day, True, settings, hours=open_hours, event_hour=open_hours - 3)
        write_landing(settings.home, "waterlogging", wet)
    # The serving tests' own day on top (one site per feed), then the load chain and the KPI
    # run of `day`, which recomputes the dirty day before it too.
    build(settings, day)
    if open_hours:
        compute_intraday(settings, now=day_start(open_day) + timedelta(hours=open_hours, minutes=5))
