"""Hourly (real-time) AQI of one station-hour, HJ 633, from the project's reference tables.

The KPI layer computes the same AQI in SQL (transforms/sql/intermediate/air_iaqi.sql), which the
alert service cannot import (layers, and it runs without a warehouse); this module reads the same
reference files, so there is one copy of the numbers: ``reference/standards/aqi_breakpoints.csv``
(HJ 633-2012 Table 1 and the 2026 changes), ``aqi_indicators.csv`` (grain ``hour``: which inputs
count, on which breakpoint table, their rounding digits and the rule above the top breakpoint) and
``aqi_rules.csv`` (rounding before IAQI, the missing-pollutant rule, the 45-minute hourly
validity). The hour's rule set is the one in force on its local day (2026-03-01: HJ 633-2026).

Arithmetic is exact (``fractions.Fraction``): readings are read as the decimals the sensor sent
(quantised to 0.001 as the SQL does), means kept to 1e-6, concentrations rounded half to even
(GB/T 8170) before the IAQI, and IAQI = ceiling, so a value on a breakpoint gets exactly that IAQI.
tests/unit/alerts/test_aqi.py checks it against the project's independent reference
implementation (tests/support/air_reference_impl.py) and the reference values of standards.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from alerts.reference import read_csv

POLLUTANTS = ("pm25", "pm10", "so2", "no2", "co", "o3")
# Landing column of each pollutant (ingestion.schema.VALUE_COLUMNS["air"]).
COLUMN = {
    "pm25": "pm25_ugm3",
    "pm10": "pm10_ugm3",
    "so2": "so2_ugm3",
    "no2": "no2_ugm3",
    "co": "co_mgm3",
    "o3": "o3_ugm3",
}


def round_half_even(x: Fraction, digits: int) -> Fraction:
    scaled = x * 10**digits
    lo = math.floor(scaled)
    rest = scaled - lo
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and lo % 2 == 1):
        lo += 1
    return Fraction(lo, 10**digits)


def as_fraction(v: float) -> Fraction:
    """A reading as the decimal the sensor sent, quantised to 0.001 (as the KPI layer does)."""
    return round_half_even(Fraction(Decimal(repr(v))), 3)


def mean(values: list[Fraction]) -> Fraction:
    """Mean kept to 1e-6, half to even (the KPI layer's internal precision)."""
    return mean_of(sum(values, Fraction(0)), len(values))


def mean_of(total: Fraction, n: int) -> Fraction:
    """``mean`` from a running exact sum and count."""
    return round_half_even(total / n, 6)


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


@dataclass(frozen=True)
class Indicator:
    input: str  # so2_1h, pm25_1h, so2_24h_moving, ...
    label: str
    pollutant: str
    bp_averaging: str
    counts_in_aqi: bool
    round_digits: int
    above_top: str  # cap | fixed | use_input
    above_top_iaqi: int | None
    above_top_input: str | None


@dataclass(frozen=True)
class RuleSet:
    name: str
    valid_from: date
    # (pollutant, averaging) -> segments (bp_lo, bp_hi, iaqi_lo, iaqi_hi), ascending
    breakpoints: dict[tuple[str, str], tuple[tuple[Fraction, Fraction, int, int], ...]]
    indicators: tuple[Indicator, ...]
    round_before_iaqi: bool
    missing_pollutant: str  # publish | publish_above | na
    missing_publish_above_aqi: int
    min_minutes_per_hour: int
    min_hours_per_24h_moving: int
    primary_above_aqi: int

    def iaqi(self, pollutant: str, averaging: str, c: Fraction) -> int | None:
        """IAQI on the breakpoint scale (ceiling); None above the top breakpoint."""
        c = max(c, Fraction(0))
        segments = self.breakpoints[(pollutant, averaging)]
        if c > segments[-1][1]:
            return None
        for bp_lo, bp_hi, i_lo, i_hi in segments:
            if bp_lo <= c <= bp_hi:
                return _ceil(Fraction(i_hi - i_lo) / (bp_hi - bp_lo) * (c - bp_lo) + i_lo)
        raise ValueError(f"{self.name}: no breakpoint segment for {pollutant} {averaging} {c}")


@dataclass(frozen=True)
class HourlyAqi:
    aqi: int | None
    iaqis: dict[str, int | None]  # label -> IAQI (None = missing)
    primary: tuple[str, ...]  # labels with the highest IAQI when AQI > primary_above_aqi (50)


def load_rule_sets(reference_dir: Path) -> list[RuleSet]:
    std = Path(reference_dir) / "standards"
    names: dict[str, date] = {}
    bps: dict[str, dict[tuple[str, str], list[tuple[Fraction, Fraction, int, int]]]] = {}
    for r in read_csv(std / "aqi_breakpoints.csv"):
        names[r["rule_set"]] = date.fromisoformat(r["valid_from"])
        seg = (
            Fraction(Decimal(r["bp_lo"])),
            Fraction(Decimal(r["bp_hi"])),
            int(r["iaqi_lo"]),
            int(r["iaqi_hi"]),
        )
        bps.setdefault(r["rule_set"], {}).setdefault((r["pollutant"], r["averaging"]), []).append(
            seg
        )
    inds: dict[str, list[tuple[int, Indicator]]] = {}
    for r in read_csv(std / "aqi_indicators.csv"):
        if r["grain"] != "hour":
            continue
        ind = Indicator(
            input=r["input"],
            label=r["label"],
            pollutant=r["pollutant"],
            bp_averaging=r["bp_averaging"],
            counts_in_aqi=r["counts_in_aqi"] == "true",
            round_digits=int(r["round_digits"]),
            above_top=r["above_top"],
            above_top_iaqi=int(r["above_top_iaqi"]) if r["above_top_iaqi"] else None,
            above_top_input=r["above_top_input"] or None,
        )
        inds.setdefault(r["rule_set"], []).append((int(r["ordinal"]), ind))
    rules: dict[str, dict[str, str]] = {}
    for r in read_csv(std / "aqi_rules.csv"):
        rules.setdefault(r["rule_set"], {})[r["param"]] = r["value"]
    out = []
    for name, valid_from in names.items():
        p = rules[name]
        out.append(
            RuleSet(
                name=name,
                valid_from=valid_from,
                breakpoints={k: tuple(sorted(v)) for k, v in bps[name].items()},
                indicators=tuple(i for _, i in sorted(inds[name], key=lambda x: x[0])),
                round_before_iaqi=p["round_before_iaqi"] == "true",
                missing_pollutant=p["missing_pollutant"],
                missing_publish_above_aqi=int(p["missing_publish_above_aqi"]),
                min_minutes_per_hour=int(p["min_minutes_per_hour"]),
                min_hours_per_24h_moving=int(p["min_hours_per_24h_moving"]),
                primary_above_aqi=int(p["primary_above_aqi"]),
            )
        )
    return sorted(out, key=lambda r: r.valid_from)


def rule_set_for(rule_sets: list[RuleSet], day: date) -> RuleSet:
    """The rule set in force on ``day``; the earliest also covers days before its valid_from."""
    chosen = rule_sets[0]
    for rs in rule_sets:
        if rs.valid_from <= day:
            chosen = rs
    return chosen


def hourly_aqi(rs: RuleSet, inputs: dict[str, Fraction | None]) -> HourlyAqi:
    """AQI of one station-hour. ``inputs``: ``{pollutant}_1h`` hourly means (None = not valid)
    and ``so2_24h_moving`` (None when fewer than the minimum hours); others are not used."""
    by_input = {i.input: i for i in rs.indicators}

    def one(ind: Indicator) -> int | None:
        c = inputs.get(ind.input)
        if c is None:
            return None
        c = max(c, Fraction(0))
        if rs.round_before_iaqi:
            c = round_half_even(c, ind.round_digits)
        v = rs.iaqi(ind.pollutant, ind.bp_averaging, c)
        if v is not None:
            return v
        if ind.above_top == "cap":
            return 500
        if ind.above_top == "fixed":
            return ind.above_top_iaqi
        other = by_input.get(ind.above_top_input or "")
        return one(other) if other is not None else None

    iaqis = {i.label: one(i) for i in rs.indicators if i.counts_in_aqi}
    available = [v for v in iaqis.values() if v is not None]
    aqi = max(available) if available else None
    # standards.md 1.2, missing pollutant: 2012 publishes the AQI of the others; 2026 only when
    # it is above 100.
    if (
        aqi is not None
        and len(available) < len(iaqis)
        and (
            rs.missing_pollutant == "na"
            or (rs.missing_pollutant == "publish_above" and aqi <= rs.missing_publish_above_aqi)
        )
    ):
        aqi = None
    primary: tuple[str, ...] = ()
    if aqi is not None and aqi > rs.primary_above_aqi:
        primary = tuple(k for k, v in iaqis.items() if v == aqi)
    return HourlyAqi(aqi, iaqis, primary)
