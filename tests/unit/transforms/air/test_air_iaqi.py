"""IAQI / AQI exactness: the reference values of standards.md 1.5 through the full production
path, every breakpoint, the category boundaries, and property tests against the independent
Fraction implementation."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.air_helpers import (
    AS_OF,
    ASSESSMENT,
    aqi_for_county_days,
    hourly_constant,
    insert_readings,
    local,
)
from support.air_reference_impl import BP_2012, BP_2026, IAQI, daily_aqi, iaqi, used

from common.settings import REPO_ROOT
from transforms.air import compute_air_range

D2012 = date(2025, 6, 10)  # any day before 2026-03-01
D2026 = date(2026, 6, 10)

# standards.md 1.5: (pollutant column, value, mart IAQI column, 2012 IAQI, 2026 IAQI)
REFERENCE_VALUES = [
    ("pm25", 36, "iaqi_pm25", 52, 52),
    ("pm25", 60, "iaqi_pm25", 82, 100),
    ("pm25", 75, "iaqi_pm25", 100, 114),
    ("pm10", 130, "iaqi_pm10", 90, 104),
    ("co", 2.5, "iaqi_co", 63, 63),
    ("no2", 41, "iaqi_no2", 52, 52),
    ("o3", 170, "iaqi_o3_8h", 110, 110),
    ("so2", 151, "iaqi_so2", 101, 101),
]


def test_reference_values_through_the_production_path(mem: duckdb.DuckDBPyConnection) -> None:
    """Each reference input as a constant hourly series at the four assessment stations, one
    day per input and rule set, computed from core.obs_air by compute_air_range."""
    days: dict[date, tuple[str, float, str, int]] = {}
    readings = []
    for base, col_idx in ((D2012, 3), (D2026, 4)):
        for i, (pol, value, col, *expected) in enumerate(REFERENCE_VALUES):
            d = base + timedelta(days=2 * i)  # a quiet day before each, for the 8h windows
            days[d] = (pol, value, col, expected[col_idx - 3])
            zero = {"pm25": 0.0, "pm10": 0.0, "so2": 0.0, "no2": 0.0, "co": 0.0, "o3": 0.0}
            vals = zero | {pol: float(value)}
            for site in ASSESSMENT:
                prev = hourly_constant(
                    site, local(d.year, d.month, d.day) - timedelta(hours=23), 24, zero
                )
                if pol == "o3":  # the 8h windows of the early hours reach into the day before
                    prev = hourly_constant(
                        site, local(d.year, d.month, d.day) - timedelta(hours=23), 24, vals
                    )
                readings += prev
                readings += hourly_constant(site, local(d.year, d.month, d.day, 1), 24, vals)
    insert_readings(mem, readings)
    for base in (D2012, D2026):
        block = [d for d in days if base <= d < base + timedelta(days=60)]
        compute_air_range(mem, min(block), max(block), as_of=AS_OF)
    for d, (pol, value, col, expected) in days.items():
        got = mem.execute(
            f"select {col}, aqi, rule_set from kpi.air_daily where local_date = ?", [d]
        ).fetchone()
        assert got is not None
        assert got[0] == expected, (d, pol, value, got)
        assert got[2] == ("HJ633-2026" if d >= date(2026, 3, 1) else "HJ633-2012")


@pytest.mark.parametrize("rule_set", ["HJ633-2012", "HJ633-2026"])
def test_reference_values_reference_impl(rule_set: str) -> None:
    """The independent implementation agrees with standards.md 1.5 as well."""
    idx = 3 if rule_set == "HJ633-2012" else 4
    for pol, value, _col, *expected in REFERENCE_VALUES:
        avg = "8h" if pol == "o3" else "24h"
        c = used(Fraction(str(value)), pol)
        assert iaqi(rule_set, pol, avg, c) == expected[idx - 3]


def test_breakpoint_csv_matches_standards_md() -> None:
    with open(REPO_ROOT / "reference/standards/aqi_breakpoints.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for rs, table in (("HJ633-2012", BP_2012), ("HJ633-2026", BP_2026)):
        for (pol, avg), bps in table.items():
            segs = sorted(
                (int(r["iaqi_lo"]), int(r["iaqi_hi"]), Decimal(r["bp_lo"]), Decimal(r["bp_hi"]))
                for r in rows
                if r["rule_set"] == rs and r["pollutant"] == pol and r["averaging"] == avg
            )
            expected = [(IAQI[i], IAQI[i + 1], bps[i], bps[i + 1]) for i in range(len(bps) - 1)]
            assert segs == expected, (rs, pol, avg)
        assert all(r["source"] and r["valid_from"] for r in rows)


DAILY_KEY = {"so2": "SO2", "no2": "NO2", "pm10": "PM10", "co": "CO", "pm25": "PM2.5"}


def test_every_breakpoint_is_exact(mem: duckdb.DuckDBPyConnection) -> None:
    """A concentration exactly on a breakpoint gets exactly that breakpoint's IAQI (not +1)."""
    days: dict[date, dict[str, Decimal | None]] = {}
    expected: dict[date, tuple[str, int]] = {}
    i = 0
    for base, table in ((D2012, BP_2012), (D2026, BP_2026)):
        for (pol, avg), bps in table.items():
            if avg != "24h":
                continue
            for k, bp in enumerate(bps):
                d = base + timedelta(days=i)
                i += 1
                conc: dict[str, Decimal | None] = dict.fromkeys(
                    ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h"), Decimal(0)
                )
                conc[pol] = Decimal(bp)
                days[d] = conc
                expected[d] = (DAILY_KEY[pol], IAQI[k])
        for key, avg in (("o3_8h", "8h"), ("o3_1h", "1h")):
            for k, bp in enumerate(table[("o3", avg)]):
                d = base + timedelta(days=i)
                i += 1
                conc = dict.fromkeys(
                    ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h"), Decimal(0)
                )
                conc[key] = Decimal(bp)
                days[d] = conc
                expected[d] = ("O3_8h" if key == "o3_8h" else "O3_1h", IAQI[k])
    got = aqi_for_county_days(mem, days)
    checked = 0
    for d, (name, want) in expected.items():
        if name == "O3_1h" and d >= date(2026, 3, 1):
            continue  # not a daily indicator under 2026
        assert got[d][name] == want, (d, name, want, got[d])
        checked += 1
    assert checked >= 100


@pytest.mark.parametrize("base", [D2012, D2026])
def test_category_boundaries(mem: duckdb.DuckDBPyConnection, base: date) -> None:
    """AQI 50/51, 100/101, 150/151, 200/201, 300/301 fall in the right category; integer SO2
    daily means that give exactly those AQIs are found with the reference implementation."""
    targets = [50, 51, 100, 101, 150, 151, 200, 201, 300, 301]
    rs = "HJ633-2026" if base >= date(2026, 3, 1) else "HJ633-2012"
    found: dict[int, int] = {}
    for c in range(0, 2621):
        v = iaqi(rs, "so2", "24h", Fraction(c))
        if v in targets and v not in found:
            found[v] = c
    assert sorted(found) == targets
    days = {}
    for j, t in enumerate(targets):
        conc: dict[str, Decimal | None] = dict.fromkeys(
            ("pm25", "pm10", "no2", "co", "o3_8h", "o3_1h"), Decimal(0)
        )
        conc["so2"] = Decimal(found[t])
        days[base + timedelta(days=j)] = conc
    got = aqi_for_county_days(mem, days)
    want_cat = {
        50: (1, "优"),
        51: (2, "良"),
        100: (2, "良"),
        101: (3, "轻度污染"),
        150: (3, "轻度污染"),
        151: (4, "中度污染"),
        200: (4, "中度污染"),
        201: (5, "重度污染"),
        300: (5, "重度污染"),
        301: (6, "严重污染"),
    }
    for j, t in enumerate(targets):
        g = got[base + timedelta(days=j)]
        assert g["aqi"] == t
        assert (g["level"], g["category_zh"]) == want_cat[t]
        assert g["is_good"] == (t <= 100)
        assert g["primary"] == (None if t <= 50 else "SO2")


def test_ties_list_every_primary_pollutant(mem: duckdb.DuckDBPyConnection) -> None:
    # PM2.5 75 -> 100 (2012) and SO2 150 -> 100 and NO2 80 -> 100: three-way tie
    conc = {
        "pm25": Decimal(75),
        "pm10": Decimal(0),
        "so2": Decimal(150),
        "no2": Decimal(80),
        "co": Decimal(0),
        "o3_8h": Decimal(0),
        "o3_1h": Decimal(0),
    }
    got = aqi_for_county_days(mem, {D2012: conc})
    assert got[D2012]["aqi"] == 100
    assert got[D2012]["primary"] == "SO2,NO2,PM2.5"


def test_rounding_half_even_before_iaqi(mem: duckdb.DuckDBPyConnection) -> None:
    """GB/T 8170: 35.5 -> 36 (IAQI 52), 34.5 -> 34 (IAQI 49); CO 2.05 -> 2.0 (50), 2.15 -> 2.2 (55)."""
    base = {
        "pm10": Decimal(0),
        "so2": Decimal(0),
        "no2": Decimal(0),
        "o3_8h": Decimal(0),
        "o3_1h": Decimal(0),
    }
    cases = {
        D2026: base | {"pm25": Decimal("35.5"), "co": Decimal(0)},
        D2026 + timedelta(days=1): base | {"pm25": Decimal("34.5"), "co": Decimal(0)},
        D2026 + timedelta(days=2): base | {"pm25": Decimal(0), "co": Decimal("2.05")},
        D2026 + timedelta(days=3): base | {"pm25": Decimal(0), "co": Decimal("2.15")},
        D2026 + timedelta(days=4): base | {"pm25": Decimal("35.500001"), "co": Decimal(0)},
    }
    got = aqi_for_county_days(mem, cases)
    assert got[D2026]["PM2.5"] == 52
    assert got[D2026 + timedelta(days=1)]["PM2.5"] == 49
    assert got[D2026 + timedelta(days=2)]["CO"] == 50
    assert got[D2026 + timedelta(days=3)]["CO"] == 55
    assert got[D2026 + timedelta(days=4)]["PM2.5"] == 52


# --------------------------------------------------------------------------- properties

conc_strategy = {
    "pm25": st.integers(0, 600_000).map(lambda x: Decimal(x) / 1000),
    "pm10": st.integers(0, 700_000).map(lambda x: Decimal(x) / 1000),
    "so2": st.integers(0, 3_000_000).map(lambda x: Decimal(x) / 1000),
    "no2": st.integers(0, 1_000_000).map(lambda x: Decimal(x) / 1000),
    "co": st.integers(0, 70_000).map(lambda x: Decimal(x) / 1000),
    "o3_8h": st.integers(0, 900_000).map(lambda x: Decimal(x) / 1000),
    "o3_1h": st.integers(0, 1_300_000).map(lambda x: Decimal(x) / 1000),
}
vector = st.fixed_dictionaries(
    {k: st.one_of(st.none(), s) if k != "o3_1h" else s for k, s in conc_strategy.items()}
)
full_vector = st.fixed_dictionaries(conc_strategy)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vectors=st.lists(vector, min_size=1, max_size=40), use_2026=st.booleans())
def test_sql_matches_reference_on_random_concentrations(
    mem: duckdb.DuckDBPyConnection, vectors: list[dict[str, Decimal | None]], use_2026: bool
) -> None:
    base = D2026 if use_2026 else D2012
    days = {base + timedelta(days=i): v for i, v in enumerate(vectors)}
    got = aqi_for_county_days(mem, days)
    for d, v in days.items():
        ref = daily_aqi(d, {k: (Fraction(x) if x is not None else None) for k, x in v.items()})
        g = got[d]
        assert g["aqi"] == ref.aqi, (v, g, ref)
        assert g["primary"] == ref.primary, (v, g, ref)
        assert g["level"] == ref.level
        assert g["category_zh"] == ref.category_zh
        assert g["is_good"] == ref.is_good
        assert g["excluded"] == ref.excluded_missing
        for name, value in ref.iaqis.items():
            assert g[name] == value, (name, v, g, ref)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(
        st.tuples(
            full_vector,
            st.sampled_from(sorted(conc_strategy)),
            st.integers(0, 200_000).map(lambda x: Decimal(x) / 1000),
        ),
        min_size=1,
        max_size=20,
    ),
    use_2026=st.booleans(),
)
def test_aqi_is_monotone_in_each_concentration(
    mem: duckdb.DuckDBPyConnection,
    pairs: list[tuple[dict[str, Decimal], str, Decimal]],
    use_2026: bool,
) -> None:
    base = D2026 if use_2026 else D2012
    days: dict[date, dict[str, Decimal | None]] = {}
    for i, (v, pol, delta) in enumerate(pairs):
        days[base + timedelta(days=2 * i)] = dict(v)
        days[base + timedelta(days=2 * i + 1)] = dict(v) | {pol: v[pol] + delta}
    got = aqi_for_county_days(mem, days)
    for i, (_v, pol, _delta) in enumerate(pairs):
        lo, hi = got[base + timedelta(days=2 * i)], got[base + timedelta(days=2 * i + 1)]
        assert lo["aqi"] is not None and hi["aqi"] is not None
        assert hi["aqi"] >= lo["aqi"], (pairs[i], lo, hi)
        name = {
            "pm25": "PM2.5",
            "pm10": "PM10",
            "so2": "SO2",
            "no2": "NO2",
            "co": "CO",
            "o3_8h": "O3_8h",
            "o3_1h": "O3_1h",
        }[pol]
        if lo[name] is not None:
            assert hi[name] >= lo[name]


def test_every_1h_breakpoint_is_exact(mem: duckdb.DuckDBPyConnection) -> None:
    """The 1h tables (SO2, NO2, CO, O3) through the real-time inputs of air_iaqi."""
    from datetime import datetime

    from common.settings import get_settings
    from transforms import SQL
    from transforms.air import MACROS, RULE_SETS_MODEL
    from transforms.prepare import prepare

    prepare(mem, get_settings())
    SQL.run(mem, MACROS)
    SQL.run(mem, RULE_SETS_MODEL)
    rows, expected = [], {}
    i = 0
    for d, table in ((D2012, BP_2012), (D2026, BP_2026)):
        rs = "HJ633-2026" if d >= date(2026, 3, 1) else "HJ633-2012"
        for pol in ("so2", "no2", "co", "o3"):
            for k, bp in enumerate(table[(pol, "1h")]):
                h = datetime(d.year, d.month, d.day) + timedelta(hours=1 + i)
                i += 1
                vals = dict.fromkeys(("pm25", "pm10", "so2", "no2", "co", "o3"), 0)
                vals[pol] = bp
                rows.append(
                    (
                        (h - timedelta(hours=1)).date(),
                        h,
                        h,
                        rs,
                        4,
                        3,
                        vals["pm25"],
                        vals["pm10"],
                        vals["so2"],
                        vals["no2"],
                        vals["co"],
                        vals["o3"],
                        0,
                        0,
                        0,
                        0,
                        100.0,
                    )
                )
                expected[(h, f"{pol}_1h")] = IAQI[k]
    mem.executemany(
        "insert into int.air_hourly_county values (?, timezone('Asia/Shanghai', ?::timestamp),"
        " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    lo = min(r[0] for r in rows)
    hi = max(r[0] for r in rows)
    SQL.run(
        mem,
        SQL.root / "intermediate/air_iaqi.sql",
        {"start_date": lo, "end_date": hi, "tz": "Asia/Shanghai"},
    )
    got = {
        (h, inp): v
        for h, inp, v in mem.execute(
            "select period_end_local, input, iaqi from int.air_iaqi"
            " where grain = 'hour' and scope = 'county'"
        ).fetchall()
    }
    for key, want in expected.items():
        assert got[key] == want, (key, want, got[key])
    assert len(expected) > 50
