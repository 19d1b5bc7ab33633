"""The reference data the alert rules run on, read from CSV files under ``reference/``.

- ``reference/alerts/thresholds.csv``: one row per (kind, level): threshold, direction, hysteresis
  margin, debounce counts, which sites it applies to, the catalogue column that overrides the
  threshold per site, and the source.
- ``reference/alerts/rules.csv``: service parameters (hour-close grace, tick).
- ``reference/validation/plausibility.csv`` and ``rules.csv`` (the validation layer's files, read
  here, not copied): a value outside a plausibility bound never raises an alert; the flat-line
  rule's ``n`` and ``ignore_zero`` are the flat-line alert's parameters.
- ``reference/standards/aqi_*.csv``: the HJ 633 breakpoints and hourly indicators (``alerts.aqi``).

For every key the row with the latest ``valid_from`` on or before the given day applies, as in
the validation layer: a threshold changes by adding a row, not by editing history.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


@lru_cache(maxsize=32)
def read_csv(path: Path) -> tuple[dict[str, str], ...]:
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def latest(
    rows: list[_T], key: Callable[[_T], Hashable], valid_from: Callable[[_T], date], on: date
) -> list[_T]:
    """Per key, the row with the latest valid_from on or before ``on``."""
    best: dict[Hashable, _T] = {}
    for r in rows:
        if valid_from(r) > on:
            continue
        k = key(r)
        if k not in best or valid_from(best[k]) < valid_from(r):
            best[k] = r
    return list(best.values())


@dataclass(frozen=True)
class Threshold:
    """One level of one alert kind (a row of reference/alerts/thresholds.csv)."""

    kind: str
    level: str
    level_no: int
    feed: str | None
    column: str | None
    direction: str  # "above": the condition is value > threshold; "below": value < threshold
    threshold: float | None
    unit: str
    margin: float
    raise_after_n: int
    clear_after_n: int
    applies_to: tuple[tuple[str, str], ...]  # catalogue attribute = value, all must hold
    site_column: str | None  # catalogue column overriding the threshold per site
    source: str
    valid_from: date


def thresholds(reference_dir: Path, on: date) -> list[Threshold]:
    rows = []
    for r in read_csv(Path(reference_dir) / "alerts" / "thresholds.csv"):
        applies = tuple(
            tuple(part.split("=", 1)) for part in r["applies_to"].split("&") if part.strip()
        )
        rows.append(
            Threshold(
                kind=r["kind"],
                level=r["level"],
                level_no=int(r["level_no"]),
                feed=r["feed"] or None,
                column=r["column"] or None,
                direction=r["direction"],
                threshold=float(r["threshold"]) if r["threshold"] else None,
                unit=r["unit"],
                margin=float(r["margin"] or 0),
                raise_after_n=int(r["raise_after_n"]),
                clear_after_n=int(r["clear_after_n"]),
                applies_to=applies,  # type: ignore[arg-type]
                site_column=r["site_column"] or None,
                source=r["source"],
                valid_from=date.fromisoformat(r["valid_from"]),
            )
        )
    found = latest(rows, lambda t: (t.kind, t.level), lambda t: t.valid_from, on)
    for t in found:
        if t.direction not in ("above", "below"):
            raise ValueError(f"thresholds.csv: {t.kind}/{t.level}: direction {t.direction!r}")
    return sorted(found, key=lambda t: (t.kind, t.level_no))


def params(reference_dir: Path, on: date) -> dict[str, float]:
    """reference/alerts/rules.csv: param -> value in force on ``on``."""
    rows = list(read_csv(Path(reference_dir) / "alerts" / "rules.csv"))
    found = latest(rows, lambda r: r["param"], lambda r: date.fromisoformat(r["valid_from"]), on)
    return {r["param"]: float(r["value"]) for r in found}


@dataclass(frozen=True)
class Bound:
    column: str
    min: float | None
    max: float | None


def plausibility(reference_dir: Path, on: date) -> dict[str, dict[str, list[Bound]]]:
    """feed -> column -> the validation layer's plausibility bounds in force on ``on``."""
    rows = list(read_csv(Path(reference_dir) / "validation" / "plausibility.csv"))
    found = latest(
        rows,
        lambda r: (r["feed"], r["check"]),
        lambda r: date.fromisoformat(r["valid_from"]),
        on,
    )
    out: dict[str, dict[str, list[Bound]]] = {}
    for r in found:
        b = Bound(
            r["column"],
            float(r["min"]) if r["min"].strip() else None,
            float(r["max"]) if r["max"].strip() else None,
        )
        out.setdefault(r["feed"], {}).setdefault(r["column"], []).append(b)
    return out


@dataclass(frozen=True)
class FlatLine:
    feed: str
    column: str
    n: int
    ignore_zero: bool


def flatline(reference_dir: Path, on: date) -> list[FlatLine]:
    """The validation layer's flat-line rule (reference/validation/rules.csv, rule flatline)."""
    rows = [
        r
        for r in read_csv(Path(reference_dir) / "validation" / "rules.csv")
        if r["rule"] == "flatline"
    ]
    found = latest(
        rows,
        lambda r: (r["feed"], r["column"], r["param"]),
        lambda r: date.fromisoformat(r["valid_from"]),
        on,
    )
    per: dict[tuple[str, str], dict[str, float]] = {}
    for r in found:
        per.setdefault((r["feed"], r["column"]), {})[r["param"]] = float(r["value"])
    return [
        # ignore_zero defaults to 0, as in expectations/derive.py: a zero run counts.
        FlatLine(feed, column, int(p["n"]), bool(p.get("ignore_zero", 0.0)))
        for (feed, column), p in sorted(per.items())
        if "n" in p
    ]
