"""An independent reference implementation of the air KPIs, written from
/work/shared/domain/standards.md (§1-§3) and the conventions of docs/kpis_air.md, with exact
``fractions.Fraction`` arithmetic. It shares no code and no reference file with ``transforms``:
the breakpoints below are typed from standards.md, so they also cross-check the CSVs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

CST = ZoneInfo("Asia/Shanghai")
POLLUTANTS = ("pm25", "pm10", "so2", "no2", "co", "o3")
COLUMN = {
    "pm25": "pm25_ugm3",
    "pm10": "pm10_ugm3",
    "so2": "so2_ugm3",
    "no2": "no2_ugm3",
    "co": "co_mgm3",
    "o3": "o3_ugm3",
}
RULES_2026_FROM = date(2026, 3, 1)

# standards.md 1.1 (HJ 633-2012 Table 1)
IAQI = (0, 50, 100, 150, 200, 300, 400, 500)
BP_2012: dict[tuple[str, str], tuple[int, ...]] = {
    ("so2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
    ("so2", "1h"): (0, 150, 500, 650, 800),
    ("no2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
    ("no2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    ("pm10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
    ("co", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
    ("co", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
    ("o3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
    ("o3", "8h"): (0, 100, 160, 215, 265, 800),
    ("pm25", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
}
# standards.md 1.2: PM2.5 100 -> 60, PM10 100 -> 120, all else unchanged
BP_2026 = dict(BP_2012)
BP_2026[("pm25", "24h")] = (0, 35, 60, 115, 150, 250, 350, 500)
BP_2026[("pm10", "24h")] = (0, 50, 120, 250, 350, 420, 500, 600)

CATEGORIES = (  # standards.md 1.4
    (50, 1, "优", "Excellent"),
    (100, 2, "良", "Good"),
    (150, 3, "轻度污染", "Lightly polluted"),
    (200, 4, "中度污染", "Moderately polluted"),
    (300, 5, "重度污染", "Heavily polluted"),
    (10**9, 6, "严重污染", "Severely polluted"),
)

# GB 3095 Table 4 and the conventions of docs/kpis_air.md; the values the reference data carries.
MIN_MINUTES, MIN_HOURS_DAY, MIN_HOURS_8H, MIN_HOURS_24H_MOVING = 45, 20, 6, 20
MIN_HOURS_O3_1H = 20
# HJ 663-2013 (standards.md 2): the daily max 8h O3 is the highest of the 8h means ending 08:00,
# 09:00 ... 24:00 (17 windows); valid with >= 14 of them, or with fewer when the highest exceeds
# the O3 8h Class II limit, 160 (compared as published: rounded half to even to an integer).
O3_8H_WINDOW_END_HOURS = tuple(range(8, 25))
MIN_O3_8H_WINDOWS, O3_8H_LIMIT = 14, 160
STATION_SHARE = Fraction(3, 4)


def rule_set(d: date) -> str:
    return "HJ633-2026" if d >= RULES_2026_FROM else "HJ633-2012"


def breakpoints(rs: str) -> dict[tuple[str, str], tuple[int, ...]]:
    return BP_2026 if rs == "HJ633-2026" else BP_2012


def ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def round_half_even(x: Fraction, digits: int) -> Fraction:
    scaled = x * 10**digits
    lo = math.floor(scaled)
    rest = scaled - lo
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and lo % 2 == 1):
        lo += 1
    return Fraction(lo, 10**digits)


def q6(x: Fraction) -> Fraction:
    """Internal precision of every mean (docs/kpis_air.md): half to even at 1e-6."""
    return round_half_even(x, 6)


def mean6(values: list[Fraction]) -> Fraction:
    return q6(sum(values, Fraction(0)) / len(values))


def as_fraction(v: float) -> Fraction:
    """A reading as the decimal the sensor sent (the SQL quantises to 0.001)."""
    return round_half_even(Fraction(Decimal(repr(v))), 3)


def iaqi(rs: str, pollutant: str, averaging: str, c: Fraction) -> int | None:
    """IAQI on the scale (standards.md 1.3); None above the top breakpoint."""
    bps = breakpoints(rs)[(pollutant, averaging)]
    c = max(c, Fraction(0))
    if c > bps[-1]:
        return None
    for i in range(len(bps) - 1):
        if bps[i] <= c <= bps[i + 1]:
            v = Fraction(IAQI[i + 1] - IAQI[i], bps[i + 1] - bps[i]) * (c - bps[i]) + IAQI[i]
            return ceil(v)
    raise AssertionError("unreachable")


def used(c: Fraction, pollutant: str) -> Fraction:
    """Concentration before IAQI: rounded half to even, CO to 0.1, others to integers (2026;
    the project applies the same rounding to 2012 days, a documented convention)."""
    return round_half_even(max(c, Fraction(0)), 1 if pollutant == "co" else 0)


@dataclass
class Aqi:
    aqi: int | None
    iaqis: dict[str, int | None]
    primary: str | None
    level: int | None
    category_zh: str | None
    excluded_missing: bool
    available_max: int | None

    @property
    def is_good(self) -> bool:
        return self.aqi is not None and self.aqi <= 100


def category(a: int) -> tuple[int, str]:
    for hi, level, zh, _en in CATEGORIES:
        if a <= hi:
            return level, zh
    raise AssertionError


ORDER = ("SO2", "NO2", "PM10", "CO", "O3_1h", "O3", "O3_8h", "PM2.5")


def finish(rs: str, iaqis: dict[str, int | None]) -> Aqi:
    """standards.md 1.2, missing pollutant: 2012 publishes the AQI of the indicators there are
    (the missing ones NA, the day valid); 2026 publishes it only when it is > 100."""
    available = [v for v in iaqis.values() if v is not None]
    amax = max(available) if available else None
    if amax is None:
        a = None
    elif len(available) == len(iaqis) or rs == "HJ633-2012" or amax > 100:
        a = amax
    else:
        a = None
    primary = None
    if a is not None and a > 50:
        primary = ",".join(k for k in ORDER if iaqis.get(k) == a)
    level, zh = category(a) if a is not None else (None, None)
    return Aqi(a, iaqis, primary, level, zh, a is None and bool(available), amax)


def daily_aqi(d: date, conc: Mapping[str, Fraction | None]) -> Aqi:
    """conc keys: so2, no2, pm10, co, pm25 (24h means), o3_8h (daily max 8h), o3_1h (max 1h)."""
    rs = rule_set(d)

    out: dict[str, int | None] = {
        "SO2": capped(rs, conc.get("so2"), "so2", "24h"),
        "NO2": capped(rs, conc.get("no2"), "no2", "24h"),
        "PM10": capped(rs, conc.get("pm10"), "pm10", "24h"),
        "CO": capped(rs, conc.get("co"), "co", "24h"),
        "PM2.5": capped(rs, conc.get("pm25"), "pm25", "24h"),
    }
    o3_1h = capped(rs, conc.get("o3_1h"), "o3", "1h")
    o3_8h_c = conc.get("o3_8h")
    if o3_8h_c is None:
        o3_8h = None
    else:
        o3_8h = iaqi(rs, "o3", "8h", used(o3_8h_c, "o3"))
        if o3_8h is None:  # above 800
            o3_8h = o3_1h if rs == "HJ633-2012" else 300
    out["O3_8h"] = o3_8h
    if rs == "HJ633-2012":
        out["O3_1h"] = o3_1h
    return finish(rs, out)


def capped(rs: str, c: Fraction | None, pol: str, avg: str) -> int | None:
    if c is None:
        return None
    v = iaqi(rs, pol, avg, used(c, pol))
    return 500 if v is None else v


def hourly_aqi(
    d: date, one_hour: Mapping[str, Fraction | None], moving24: Mapping[str, Fraction | None]
) -> Aqi:
    """Real-time AQI as the national platform publishes it: SO2, NO2, CO, O3 1h values and the
    PM 1h values on the 24h breakpoints, under both rule sets (the O3 8h moving mean is not
    counted: 299/299 published Xingtai station hours agree, 136/299 with it)."""
    rs = rule_set(d)
    out: dict[str, int | None] = {
        "NO2": capped(rs, one_hour.get("no2"), "no2", "1h"),
        "CO": capped(rs, one_hour.get("co"), "co", "1h"),
        "O3": capped(rs, one_hour.get("o3"), "o3", "1h"),
    }
    so2 = one_hour.get("so2")
    if so2 is None:
        out["SO2"] = None
    else:
        v = iaqi(rs, "so2", "1h", used(so2, "so2"))
        if v is None:  # above 800
            v = 200 if rs == "HJ633-2026" else capped(rs, moving24.get("so2"), "so2", "24h")
        out["SO2"] = v
    out["PM10"] = capped(rs, one_hour.get("pm10"), "pm10", "24h")
    out["PM2.5"] = capped(rs, one_hour.get("pm25"), "pm25", "24h")
    return finish(rs, out)


# --------------------------------------------------------------------------- aggregation


@dataclass
class Reading:
    site_id: str
    observed_at: datetime  # aware
    period_s: int
    values: dict[str, float | None]
    is_valid: bool = True


@dataclass
class Result:
    hourly: dict[tuple[str, datetime], dict[str, Fraction | None]] = field(default_factory=dict)
    daily: dict[tuple[str, date], dict[str, Fraction | None]] = field(default_factory=dict)
    county: dict[date, dict[str, Fraction | None]] = field(default_factory=dict)
    county_aqi: dict[date, Aqi] = field(default_factory=dict)
    station_aqi: dict[tuple[str, date], Aqi] = field(default_factory=dict)


def hour_end_local(r: Reading) -> datetime:
    """Naive China time of the end of the reading's hour (kpi_contract time convention)."""
    # observed_at ends the period (contract v1): the reading covers (t - period, t], so it
    # belongs to the hour holding its last covered instant, whatever its period.
    last = r.observed_at.astimezone(CST).replace(tzinfo=None) - timedelta(microseconds=1)
    return last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def hourly_means(
    readings: Iterable[Reading],
) -> dict[tuple[str, datetime], dict[str, Fraction | None]]:
    vals: dict[tuple[str, datetime, str], list[Fraction]] = defaultdict(list)
    # minute indexes (0..59) of the hour covered by a valid value: a union, clipped to the hour
    minutes: dict[tuple[str, datetime, str], set[int]] = defaultdict(set)
    keys: set[tuple[str, datetime]] = set()
    for r in readings:
        if not r.is_valid:
            continue
        h = hour_end_local(r)
        keys.add((r.site_id, h))
        minute = (r.observed_at.astimezone(CST) - timedelta(microseconds=1)).minute
        span = 60 if r.period_s >= 3600 else max(1, r.period_s // 60)
        covered_by_r = range(0, 60) if span == 60 else range(max(0, minute - span + 1), minute + 1)
        for p in POLLUTANTS:
            v = r.values.get(p)
            if v is None:
                continue
            vals[(r.site_id, h, p)].append(as_fraction(v))
            minutes[(r.site_id, h, p)].update(covered_by_r)
    out: dict[tuple[str, datetime], dict[str, Fraction | None]] = {}
    for site, h in keys:
        row: dict[str, Fraction | None] = {}
        for p in POLLUTANTS:
            covered = len(minutes.get((site, h, p), ()))
            row[p] = mean6(vals[(site, h, p)]) if covered >= MIN_MINUTES else None
        out[(site, h)] = row
    return out


def o3_8h_window(res: Result, site: str, end: datetime) -> Fraction | None:
    """The 8h moving mean ending at `end` (hours end-7 .. end), valid with >= 6 hourly values."""
    xs = [
        v
        for k in range(8)
        if (v := res.hourly.get((site, end - timedelta(hours=k)), {}).get("o3")) is not None
    ]
    return mean6(xs) if len(xs) >= MIN_HOURS_8H else None


def daily_max_8h(windows: list[Fraction | None]) -> Fraction | None:
    """HJ 663: the highest valid window of the 17; valid with >= 14 valid windows, or with fewer
    when the highest, rounded to an integer as published, exceeds 160."""
    valid = [w for w in windows if w is not None]
    if not valid:
        return None
    best = max(valid)
    if len(valid) >= MIN_O3_8H_WINDOWS or round_half_even(best, 0) > O3_8H_LIMIT:
        return best
    return None


def compute(readings: list[Reading], sites: Mapping[str, bool], days: list[date]) -> Result:
    """sites: site_id -> is_assessment (all air sites of the catalogue)."""
    res = Result()
    res.hourly = hourly_means(readings)

    def hv(site: str, h: datetime, p: str) -> Fraction | None:
        return res.hourly.get((site, h), {}).get(p)

    for site in sites:
        for d in days:
            start = datetime(d.year, d.month, d.day)
            hours = [start + timedelta(hours=i) for i in range(1, 25)]
            row: dict[str, Fraction | None] = {}
            for p in ("pm25", "pm10", "so2", "no2", "co"):
                xs = [v for h in hours if (v := hv(site, h, p)) is not None]
                row[p] = mean6(xs) if len(xs) >= MIN_HOURS_DAY else None
            o3 = [v for h in hours if (v := hv(site, h, "o3")) is not None]
            row["o3_1h"] = max(o3) if len(o3) >= MIN_HOURS_O3_1H else None
            row["o3_8h"] = daily_max_8h(
                [
                    o3_8h_window(res, site, start + timedelta(hours=e))
                    for e in O3_8H_WINDOW_END_HOURS
                ]
            )
            res.daily[(site, d)] = row
            res.station_aqi[(site, d)] = daily_aqi(d, row)
    assessment = [s for s, a in sites.items() if a]
    need = max(1, math.ceil(STATION_SHARE * len(assessment)))
    for d in days:
        row = {}
        for k in ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h"):
            xs = [v for s in assessment if (v := res.daily[(s, d)][k]) is not None]
            row[k] = mean6(xs) if len(xs) >= need else None
        res.county[d] = row
        res.county_aqi[d] = daily_aqi(d, row)
    return res


def moving24(res: Result, site: str, h: datetime, p: str) -> Fraction | None:
    xs = [
        v
        for k in range(24)
        if (v := res.hourly.get((site, h - timedelta(hours=k)), {}).get(p)) is not None
    ]
    return mean6(xs) if len(xs) >= MIN_HOURS_24H_MOVING else None


def ratio_pct(good: int, valid: int) -> Decimal | None:
    """good / valid x 100, half to even at 0.1 %."""
    if valid == 0:
        return None
    r = round_half_even(Fraction(100 * good, valid), 1)
    return Decimal(r.numerator) / Decimal(r.denominator)


def percentile(xs: list[float], p: float) -> float:
    """standards.md 3: k = 1 + (n - 1) p / 100, X(s) + (X(s+1) - X(s)) (k - s)."""
    s_xs = sorted(xs)
    k = 1 + (len(s_xs) - 1) * p / 100
    s = math.floor(k)
    if s >= len(s_xs):
        return s_xs[-1]
    return s_xs[s - 1] + (s_xs[s] - s_xs[s - 1]) * (k - s)


def county_hourly(
    res: Result, assessment: list[str], h: datetime
) -> tuple[dict[str, Fraction | None], dict[str, Fraction | None]]:
    """County hourly values: mean of the assessment stations' valid hourly (and 24h moving)
    values, with the same station-share rule as the daily county value."""
    need = max(1, math.ceil(STATION_SHARE * len(assessment)))
    one: dict[str, Fraction | None] = {}
    mov: dict[str, Fraction | None] = {}
    for p in POLLUTANTS:
        xs = [v for s in assessment if (v := res.hourly.get((s, h), {}).get(p)) is not None]
        one[p] = mean6(xs) if len(xs) >= need else None
    for p in ("pm25", "pm10", "so2"):
        xs = [v for s in assessment if (v := moving24(res, s, h, p)) is not None]
        mov[p] = mean6(xs) if len(xs) >= need else None
    return one, mov
