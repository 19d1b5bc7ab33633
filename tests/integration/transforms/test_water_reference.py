"""An independent Python implementation of GB 3838-2002 section classification (2011 method),
compared with the SQL models on randomized multi-day data (rivers, lakes, drinking sources;
values on and around every limit, invalid rows, failed channels)."""

from __future__ import annotations

import csv
import json
import math
import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import pytest

from common.settings import REPO_ROOT
from transforms.water import compute_water_range

CST = timezone(timedelta(hours=8))
CHANNELS = ("ph", "do_mgl", "codmn_mgl", "nh3n_mgl", "tp_mgl", "tn_mgl", "water_temp_c")
SITES = {  # site -> water body type
    "WS-WAT-01": "river",
    "WS-WAT-02": "river",
    "WS-WAT-03": "lake_reservoir",
    "WS-DWS-03": "lake_reservoir",
    "WS-DWS-01": "river",
}
DAYS = [date(2026, 1, 30) + timedelta(days=i) for i in range(4)]  # crosses a month


def load_limits() -> list[dict[str, str]]:
    with open(REPO_ROOT / "reference/standards/gb3838_limits.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def gbt8170(x: Decimal, digits: int) -> Decimal:
    """GB/T 8170 rounding (half to even) of an exact decimal."""
    return x.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)


def classify(value: float, lim: dict[str, str]) -> int | None:
    d = lim["direction"]
    if d not in ("range", "max", "min"):
        return None  # water temperature: no class limit
    if d == "range":
        return 1 if float(lim["range_lo"]) <= value <= float(lim["range_hi"]) else 6
    bounds = [float(lim[f"class_{c}"]) for c in ("i", "ii", "iii", "iv", "v")]
    for cls, b in enumerate(bounds, start=1):
        if (d == "max" and value <= b) or (d == "min" and value >= b):
            return cls
    return 6


def reference(readings: list[dict], limits: list[dict[str, str]]) -> dict[tuple, dict]:
    by_channel = defaultdict(list)
    for lim in limits:
        if lim["channel"]:
            by_channel[lim["channel"]].append(lim)
    out = {}
    for site, body in SITES.items():
        for as_of in DAYS:
            for period, first in (
                ("day", as_of),
                ("month", as_of.replace(day=1)),
                ("year", as_of.replace(month=1, day=1)),
            ):
                items = []
                for ch in CHANNELS:
                    vals = [
                        r[ch]
                        for r in readings
                        if r["site_id"] == site
                        and r["is_valid"]
                        and r[ch] is not None
                        and first <= r["local_date"] <= as_of
                    ]
                    lims = [x for x in by_channel[ch] if x["water_body"] in ("all", body)]
                    if not vals or not lims:
                        continue
                    lim = lims[0]
                    # Exact decimal mean of the results as written, then GB/T 8170 rounding.
                    exact = sum(Decimal(str(x)) for x in vals) / len(vals)
                    v = float(gbt8170(exact, int(lim["decimals"])))
                    cls = classify(v, lim)
                    if lim["is_assessment"] != "true" or cls is None:
                        continue
                    mult = None
                    if lim["direction"] == "max" and cls > 3:
                        ratio = Decimal(str(v)) / Decimal(lim["class_iii"]) - 1
                        mult = float(gbt8170(ratio, 2))
                    items.append((cls, mult, int(lim["item_no"]), lim["item_code"]))
                worst = max((i[0] for i in items), default=None)
                bad = sorted(
                    (i for i in items if i[0] > 3),
                    key=lambda i: (-i[0], -(i[1] if i[1] is not None else -math.inf), i[2]),
                )
                out[(site, as_of, period)] = {
                    "class": worst,
                    "main": [(i[3], i[1]) for i in bad[:3]],
                }
    return out


def random_value(
    rng: random.Random, ch: str, limits: list[dict[str, str]], clean: bool
) -> float | None:
    if rng.random() < 0.05:
        return None  # a failed channel
    if clean:  # Class I-II values, limits included
        lim = next(x for x in limits if x["channel"] == ch)
        if ch == "ph":
            return rng.choice([6.0, 9.0, 7.3])
        if ch == "water_temp_c" or lim["direction"] not in ("max", "min"):
            return 20.0
        lo, hi = sorted((float(lim["class_i"]), float(lim["class_ii"])))
        lo = min(lo, 0.0) if lim["direction"] == "max" else lo
        hi = hi if lim["direction"] == "max" else hi + 2
        return rng.choice([float(lim["class_i"]), round(rng.uniform(lo, hi), 3)])
    if ch == "ph":
        return rng.choice([5.99, 6.0, 7.5, 9.0, 9.01, round(rng.uniform(5.5, 9.5), 2)])
    if ch == "water_temp_c":
        return round(rng.uniform(5, 30), 1)
    points = sorted(
        {float(x[f"class_{c}"]) for x in limits if x["channel"] == ch
         for c in ("i", "ii", "iii", "iv", "v") if x[f"class_{c}"]}
    )  # fmt: skip
    if rng.random() < 0.5:
        return rng.choice(points)  # exactly on a limit
    return round(rng.uniform(0, points[-1] * 1.6), 3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_matches_python_reference(wh: duckdb.DuckDBPyConnection, insert_obs, seed) -> None:
    rng = random.Random(seed)
    limits = load_limits()
    readings = []
    for n, site in enumerate(SITES):
        clean = n % 2 == 0  # clean sites reach Class I-II, the others every class
        for d in DAYS:
            for i in range(6):
                if rng.random() < 0.1:
                    continue  # a missing result
                obs = datetime(d.year, d.month, d.day, tzinfo=CST) + timedelta(hours=4 * i)
                r = {"site_id": site, "observed_at": obs, "period_s": 14400, "local_date": d,
                     "is_valid": rng.random() > 0.1}  # fmt: skip
                for ch in CHANNELS:
                    r[ch] = random_value(rng, ch, limits, clean)
                readings.append(r)
    insert_obs("water", [{k: v for k, v in r.items() if k != "local_date"} for r in readings])
    compute_water_range(wh, DAYS[0], DAYS[-1])
    expected = reference(readings, limits)
    got = {
        (s, d, p): {
            "class": c,
            "main": [(m["item"], m["exceedance_multiple"]) for m in json.loads(mp)] if mp else [],
        }
        for s, d, p, c, mp in wh.execute(
            "select site_id, as_of_date, period, section_class, main_pollutants_json"
            " from kpi.water_period_section where site_id in ?",
            [list(SITES)],
        ).fetchall()
    }
    assert got == expected
    classes = {v["class"] for v in expected.values()}
    assert min(classes) <= 2 and 6 in classes  # the data reached both ends
