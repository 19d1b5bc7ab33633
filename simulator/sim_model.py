"""Deterministic models of what Wushan's sensors would measure, for the simulator.

Nothing here is a measurement: the shapes follow well-known patterns (winter PM peaks, afternoon
summer ozone, rush hours, flood-season storms) so that the pipeline and its KPIs see data that
behaves like the real thing. Every random draw comes from ``random.Random`` seeded with a string
made of the run's seed and the site or day, so a (seed, day, site) always gives the same values,
whatever the date range or feed selection of the run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from common.catalogue import Site

MINUTES = 1440

# Monthly climatology (index 0 = January). Wushan: humid subtropical, Yangtze valley.
# µg/m³, regional background: an annual mean near 26 and winter days mostly below the
# 2026 IAQI-100 breakpoint (60), so good days stay near the plan's 96–98 % unless episodes hit.
PM25_MONTH = (42, 38, 30, 25, 20, 16, 14, 15, 18, 24, 32, 40)
O3_PEAK_MONTH = (60, 70, 95, 120, 145, 160, 165, 155, 130, 100, 75, 60)  # µg/m³, afternoon 1h
AIR_TEMP_MONTH = (7, 9, 13, 18, 22, 26, 28.5, 28, 24, 18, 13, 8.5)  # °C
WATER_TEMP_MONTH = (9, 10, 13, 17, 21, 24, 26, 26.5, 24, 20, 15, 11)  # °C
# Chance that a day has a storm; May–September is the flood season (汛期).
STORM_DAY_P = (0.03, 0.03, 0.05, 0.08, 0.15, 0.18, 0.18, 0.15, 0.12, 0.08, 0.04, 0.03)
# Chance per day that a regional pollution episode starts (stagnant winter air).
# About three a year, most in winter: roughly 8 days a year that are not "good".
EPISODE_START_P = (0.02, 0.018, 0.008, 0.005, 0.003, 0.002, 0.002, 0.002, 0.003, 0.006, 0.012, 0.02)

# Traffic demand, vehicles per hour per lane on a weekday arterial, by local hour.
WEEKDAY_VPH = (
    60, 40, 30, 25, 30, 80, 250, 620, 680, 450, 400, 420,
    430, 400, 420, 470, 560, 700, 650, 450, 330, 250, 170, 100,
)  # fmt: skip
WEEKEND_VPH = (
    80, 50, 35, 25, 25, 50, 120, 280, 380, 450, 480, 500,
    500, 480, 470, 480, 500, 520, 480, 400, 330, 270, 200, 130,
)  # fmt: skip
DEMAND_BY_CLASS = {"expressway": 0.9, "arterial": 1.0, "secondary": 0.7, "branch": 0.4}
# Lane capacity (veh/h): the old town's narrow, parked-up streets carry less.
CAPACITY = {"expressway": 1800, "arterial": 900, "secondary": 700, "branch": 450}
OLD_TOWN_CAPACITY = 0.72
OLD_TOWN_DEMAND = 1.1


def rng_for(*parts: object) -> random.Random:
    # Seeding with a str hashes it with SHA-512: stable across processes and PYTHONHASHSEED.
    return random.Random(":".join(str(p) for p in parts))


@dataclass(frozen=True, slots=True)
class Storm:
    start_min: int  # local minute of the day
    duration_min: int
    peak_mmh: float


@dataclass(frozen=True, slots=True)
class DayWeather:
    day: date
    storms: tuple[Storm, ...]
    rain_mmh: tuple[float, ...]  # county-wide rain rate for each local minute
    rain_total_mm: float
    episode: float  # regional pollution multiplier (1.0 = none)


class Climate:
    """County-wide weather and pollution episodes of one seed, day by day."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def day(self, d: date) -> DayWeather:
        return _day_weather(self.seed, d)

    def rain_before(self, d: date, days: int = 2) -> float:
        """Rain (mm) fell over the ``days`` days before ``d``: drives river turbidity and TP."""
        return sum(self.day(d - timedelta(days=k)).rain_total_mm for k in range(1, days + 1))


@lru_cache(maxsize=2048)
def _day_weather(seed: int, d: date) -> DayWeather:
    rng = rng_for(seed, "weather", d.isoformat())
    m = d.month - 1
    storms: list[Storm] = []
    if rng.random() < STORM_DAY_P[m]:
        flood_season = 4 <= m <= 8
        for _ in range(rng.choice((1, 1, 1, 2))):
            duration = rng.randint(45, 240)
            start = rng.randint(0, MINUTES - duration)
            peak = rng.uniform(15, 70) if flood_season else rng.uniform(2, 12)
            storms.append(Storm(start, duration, round(peak, 1)))
    rain = [0.0] * MINUTES
    for s in storms:
        for k in range(s.duration_min):
            x = (k + 0.5) / s.duration_min
            rain[s.start_min + k] += s.peak_mmh * math.sin(math.pi * x) ** 2
    total = sum(rain) / 60.0
    return DayWeather(d, tuple(storms), tuple(rain), total, _episode(seed, d))


@lru_cache(maxsize=64)
def _episodes_of_year(seed: int, year: int) -> dict[date, float]:
    # Episodes span days (and may cross the new year: the previous year's tail is included).
    rng = rng_for(seed, "episodes", year)
    out: dict[date, float] = {}
    d = date(year - 1, 12, 1)
    end = date(year, 12, 31)
    while d <= end:
        if rng.random() < EPISODE_START_P[d.month - 1]:
            length = rng.randint(2, 5)
            strength = rng.uniform(1.6, 2.8)
            for k in range(length):
                # Ramp up, plateau, clear out.
                shape = min(1.0, (k + 1) / 2, (length - k) / 1.5)
                day = d + timedelta(days=k)
                out[day] = max(out.get(day, 1.0), 1.0 + (strength - 1.0) * shape)
            d += timedelta(days=length)
        else:
            d += timedelta(days=1)
    return out


def _episode(seed: int, d: date) -> float:
    return _episodes_of_year(seed, d.year).get(d, 1.0)


# ---------------------------------------------------------------------------- per-site models


@dataclass(slots=True)
class AirModel:
    site: Site
    seed: int
    rng: random.Random = field(init=False)
    factor: float = field(init=False)
    noise: float = field(init=False)
    ar: float = 0.0
    wind_deg: float = 0.0

    def __post_init__(self) -> None:
        self.rng = rng_for(self.seed, "air", self.site.site_id)
        district = self.site.get("district")
        # Old town and valley-floor stations sit in more traffic and less wind.
        self.factor = {"gaotang": 1.15, "longmen": 1.05, "zaoyang": 1.0}.get(str(district), 0.92)
        self.factor *= self.rng.uniform(0.95, 1.05)
        self.noise = 0.08 if self.site.get("station_type") == "micro" else 0.03
        self.wind_deg = self.rng.uniform(0, 360)

    def values(self, d: date, minute: int, weather: DayWeather) -> dict[str, float | None]:
        rng = self.rng
        m = d.month - 1
        h = minute / 60.0
        rain = weather.rain_mmh[minute]
        # Slow station noise: AR(1) in log space, stationary sd ≈ 0.2.
        self.ar = 0.995 * self.ar + rng.gauss(0.0, 0.02)
        # Night-time inversion and evening heating/cooking peak; afternoon mixing low.
        diurnal = (
            1.0
            + 0.22 * math.cos(2 * math.pi * (h - 22) / 24)
            + 0.08 * math.cos(2 * math.pi * (h - 8) / 12)
        )
        washout = 1.0 / (1.0 + 0.04 * rain)
        pm25 = PM25_MONTH[m] * diurnal * weather.episode * washout * self.factor * math.exp(self.ar)
        pm25 *= 1.0 + rng.gauss(0.0, self.noise)
        pm25 = max(1.0, pm25)
        pm10 = pm25 * (1.55 + 0.25 * (m in (2, 3, 4))) * (1.0 + abs(rng.gauss(0.0, 0.05)))
        rush = (
            1.0 + 0.6 * math.exp(-(((h - 8) / 1.2) ** 2)) + 0.5 * math.exp(-(((h - 18) / 1.3) ** 2))
        )
        winter = 1.0 + 0.3 * math.cos(2 * math.pi * m / 12)
        no2 = 18.0 * rush * winter * self.factor * math.exp(self.ar / 2) * (1 + rng.gauss(0, 0.05))
        so2 = 7.0 * winter * (1 + rng.gauss(0, 0.08))
        co = (0.45 + 0.011 * pm25) * (1 + rng.gauss(0, 0.04))
        sun = max(0.0, math.sin(math.pi * (h - 7) / 12)) ** 1.5 if 7 <= h <= 19 else 0.0
        o3 = (20.0 + (O3_PEAK_MONTH[m] - 20.0) * sun) * (1 + rng.gauss(0, 0.06)) * washout
        temp = AIR_TEMP_MONTH[m] + 4.0 * math.cos(2 * math.pi * (h - 15) / 24) + rng.gauss(0, 0.2)
        rh = min(100.0, max(20.0, 75.0 - 2.0 * (temp - AIR_TEMP_MONTH[m]) + 1.5 * rain))
        self.wind_deg = (self.wind_deg + rng.gauss(0, 4)) % 360
        return {
            "pm25": round(pm25, 1),
            "pm10": round(pm10, 1),
            "so2": round(max(1.0, so2), 1),
            "no2": round(max(1.0, no2), 1),
            "co": round(max(0.1, co), 2),
            "o3": round(max(1.0, o3), 1),
            "temp_c": round(temp, 1),
            "rh_pct": round(rh, 1),
            "wind_ms": round(
                max(0.0, 1.4 + 0.8 * math.sin(2 * math.pi * (h - 10) / 24) + rng.gauss(0, 0.3)), 1
            ),
            "wind_deg": round(self.wind_deg),
            "pressure_hpa": round(1002.0 - 0.6 * (AIR_TEMP_MONTH[m] - 15) + rng.gauss(0, 0.3), 1),
        }


@dataclass(slots=True)
class WaterModel:
    site: Site
    seed: int
    climate: Climate
    rng: random.Random = field(init=False)
    lake: bool = field(init=False)
    troubled: bool = field(init=False)
    base: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = r = rng_for(self.seed, "water", self.site.site_id)
        self.lake = self.site.get("water_body_type") == "lake_reservoir"
        # About one section in six has a nearby source (a town outfall, farmland) that
        # occasionally pushes it past Class II.
        self.troubled = r.random() < 0.17
        self.base = {
            "ph": r.uniform(7.5, 8.2),
            "do_deficit": r.uniform(0.8, 1.6),
            "codmn": r.uniform(1.5, 2.8),
            "nh3n": r.uniform(0.08, 0.28),
            "tp": r.uniform(0.01, 0.016) if self.lake else r.uniform(0.03, 0.065),
            "tn": r.uniform(0.3, 0.45) if self.lake else r.uniform(0.7, 1.4),
            "conductivity": r.uniform(240, 400),
            "turbidity": r.uniform(2, 6) if self.lake else r.uniform(5, 15),
        }

    def values(self, d: date, minute: int, weather: DayWeather) -> dict[str, float | None]:
        rng = self.rng
        b = self.base
        temp = WATER_TEMP_MONTH[d.month - 1] + 1.0 * math.cos(2 * math.pi * (minute / 60 - 15) / 24)
        temp += rng.gauss(0, 0.2)
        # Oxygen saturation falls with temperature; the river runs a little under saturation.
        do_sat = 14.6 - 0.39 * temp + 0.0071 * temp * temp
        rain = self.climate.rain_before(d) + sum(weather.rain_mmh[: minute + 1]) / 60.0
        # Runoff after rain: muddier water, more phosphorus and organics; lakes buffer it.
        runoff = min(2.0, rain / 40.0) * (0.4 if self.lake else 1.0)
        bad = 1.0
        if self.troubled and rng_for(self.seed, "water-bad", self.site.site_id, d).random() < 0.15:
            bad = rng_for(self.seed, "water-bad-x", self.site.site_id, d).uniform(1.8, 3.2)

        def jitter(sd: float) -> float:
            return 1.0 + rng.gauss(0.0, sd)

        return {
            "water_temp_c": round(temp, 1),
            "ph": round(b["ph"] + rng.gauss(0, 0.05), 2),
            "do": round(max(0.5, (do_sat - b["do_deficit"] - 0.8 * (bad - 1)) * jitter(0.02)), 2),
            "codmn": round(
                b["codmn"] * (1 + 0.12 * runoff) * (1 + 0.5 * (bad - 1)) * jitter(0.05), 2
            ),
            "nh3n": round(b["nh3n"] * bad * jitter(0.08), 3),
            "tp": round(b["tp"] * (1 + 0.25 * runoff) * bad * jitter(0.08), 3),
            "tn": round(b["tn"] * (1 + 0.15 * runoff) * jitter(0.05), 2),
            "conductivity": round(b["conductivity"] * (1 - 0.1 * runoff) * jitter(0.02), 1),
            "turbidity": round(b["turbidity"] * (1 + 3.0 * runoff) * jitter(0.1), 1),
        }


@dataclass(slots=True)
class WaterloggingModel:
    site: Site
    seed: int
    rng: random.Random = field(init=False)
    susceptibility: float = field(init=False)
    capacity_mmh: float = field(init=False)
    depth: float = 0.0

    def __post_init__(self) -> None:
        self.rng = r = rng_for(self.seed, "waterlogging", self.site.site_id)
        cluster = str(self.site.get("cluster") or self.site.district)
        # The old town's Gaotang cluster drains worst (the plan's pipe-repair target), then
        # Zaoyang before its flood-control works.
        self.susceptibility = {
            "gaotang": r.uniform(2.0, 2.8),
            "zaoyang": r.uniform(1.0, 1.4),
        }.get(cluster, r.uniform(0.5, 0.9))
        self.capacity_mmh = 10.0 if cluster == "gaotang" else 18.0

    def values(
        self, d: date, minute: int, weather: DayWeather, period_s: int = 60
    ) -> dict[str, float | None]:
        rng = self.rng
        rain = weather.rain_mmh[minute] * self.rng.uniform(0.85, 1.15)
        steps = max(1, period_s // 60)
        for _ in range(steps):
            # Ponding grows with rain above the drains' capacity and drains away (half-life ~25 min).
            self.depth = self.depth * 0.973 + 0.02 * self.susceptibility * max(
                0.0, rain - self.capacity_mmh
            )
        self.depth = min(self.depth, 120.0)
        reading = self.depth + rng.gauss(0.0, 0.3)
        return {
            "depth_cm": round(max(0.0, reading), 1),
            "rain_mm": round(rain * period_s / 3600.0, 2),
        }


@dataclass(slots=True)
class TrafficModel:
    site: Site
    seed: int
    rng: random.Random = field(init=False)
    free_flow: float = field(init=False)
    capacity: float = field(init=False)
    demand: float = field(init=False)
    lanes: int = field(init=False)

    def __post_init__(self) -> None:
        self.rng = r = rng_for(self.seed, "traffic", self.site.site_id)
        road = str(self.site.get("road_class") or "secondary")
        old = bool(self.site.get("is_old_town"))
        self.free_flow = float(self.site.get("free_flow_kmh") or 50.0)  # type: ignore[arg-type]
        self.capacity = CAPACITY.get(road, 700) * (OLD_TOWN_CAPACITY if old else 1.0)
        self.demand = DEMAND_BY_CLASS.get(road, 0.7) * (OLD_TOWN_DEMAND if old else 1.0)
        self.demand *= r.uniform(0.9, 1.1)
        self.lanes = int(self.site.get("lanes") or 1)  # type: ignore[call-overload]

    def direction(self, lane: int) -> str:
        # Lanes are numbered across the road; the first half runs into town.
        return "inbound" if lane <= (self.lanes + 1) // 2 else "outbound"

    def values(
        self, d: date, minute: int, weather: DayWeather, lane: int, period_s: int = 300
    ) -> dict[str, float | None]:
        rng = self.rng
        h = minute // 60
        frac = (minute % 60) / 60.0
        profile = WEEKEND_VPH if d.weekday() >= 5 else WEEKDAY_VPH
        vph = profile[h] * (1 - frac) + profile[(h + 1) % 24] * frac
        # Inbound is heavier in the morning, outbound in the evening; kerb lane slowest.
        tidal = 1.0
        if self.direction(lane) == "inbound":
            tidal = 1.15 if 6 <= h < 10 else 0.9 if 16 <= h < 20 else 1.0
        else:
            tidal = 0.9 if 6 <= h < 10 else 1.15 if 16 <= h < 20 else 1.0
        vph *= self.demand * tidal * (1.0 + rng.gauss(0.0, 0.08))
        mean = max(0.0, vph * period_s / 3600.0)
        volume = max(0, round(rng.gauss(mean, math.sqrt(mean) if mean > 0 else 0.0)))
        vc = vph / self.capacity
        speed = self.free_flow / (1.0 + 0.9 * vc**4)
        rain = weather.rain_mmh[minute]
        speed *= 1.0 - 0.15 * min(1.0, rain / 20.0)
        speed *= 1.0 - 0.04 * (lane == 1)
        speed = max(3.0, speed * (1.0 + rng.gauss(0.0, 0.05)))
        if volume == 0:
            return {"volume": 0, "speed_kmh": None, "occupancy_pct": 0.0}
        flow_vph = volume * 3600.0 / period_s
        occupancy = min(98.0, flow_vph * 6.0 / (speed * 1000.0) * 100.0)
        return {
            "volume": volume,
            "speed_kmh": round(speed, 1),
            "occupancy_pct": round(occupancy, 1),
        }
