"""Validation reference data: plausibility bounds and rule parameters, from CSV files.

``reference/validation/plausibility.csv`` (feed, column, check, min, max, source, valid_from) and
``reference/validation/rules.csv`` (feed, rule, column, param, value, source, valid_from). For each
(feed, check) or (feed, rule, column, param) the row with the latest ``valid_from`` on or before
the run's date applies, so a bound can change without rewriting history.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TypeVar


@dataclass(frozen=True)
class Bound:
    feed: str
    column: str
    check: str
    min: float | None
    max: float | None
    source: str
    valid_from: date


@dataclass(frozen=True)
class RuleParam:
    feed: str
    rule: str
    column: str
    param: str
    value: float
    source: str
    valid_from: date


_T = TypeVar("_T", Bound, RuleParam)


def _num(raw: str) -> float | None:
    return None if raw.strip() == "" else float(raw)


@lru_cache(maxsize=8)
def _read(path: Path) -> tuple[dict[str, str], ...]:
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def _latest(rows: list[_T], key: Callable[[_T], Hashable], on: date) -> list[_T]:
    best: dict[Hashable, _T] = {}
    for r in rows:
        if r.valid_from > on:
            continue
        k = key(r)
        if k not in best or best[k].valid_from < r.valid_from:
            best[k] = r
    return list(best.values())


def bounds(reference_dir: Path, feed: str, on: date) -> list[Bound]:
    rows = [
        Bound(
            feed=r["feed"],
            column=r["column"],
            check=r["check"],
            min=_num(r["min"]),
            max=_num(r["max"]),
            source=r["source"],
            valid_from=date.fromisoformat(r["valid_from"]),
        )
        for r in _read(Path(reference_dir) / "validation" / "plausibility.csv")
        if r["feed"] == feed
    ]
    return _latest(rows, lambda b: b.check, on)


def rule_params(reference_dir: Path, feed: str, on: date) -> list[RuleParam]:
    rows = [
        RuleParam(
            feed=r["feed"],
            rule=r["rule"],
            column=r["column"],
            param=r["param"],
            value=float(r["value"]),
            source=r["source"],
            valid_from=date.fromisoformat(r["valid_from"]),
        )
        for r in _read(Path(reference_dir) / "validation" / "rules.csv")
        if r["feed"] == feed
    ]
    return _latest(rows, lambda p: (p.rule, p.column, p.param), on)


@dataclass(frozen=True)
class FeedRules:
    """Everything the derived columns and the suite of one feed need, as plain values."""

    feed: str
    bounds: tuple[Bound, ...]
    # rule -> column -> param -> value
    params: dict[str, dict[str, dict[str, float]]]

    def rule(self, rule: str) -> dict[str, dict[str, float]]:
        return self.params.get(rule, {})

    def param(self, rule: str, column: str, param: str, default: float) -> float:
        return self.params.get(rule, {}).get(column, {}).get(param, default)


def feed_rules(reference_dir: Path, feed: str, on: date) -> FeedRules:
    params: dict[str, dict[str, dict[str, float]]] = {}
    for p in rule_params(reference_dir, feed, on):
        params.setdefault(p.rule, {}).setdefault(p.column, {})[p.param] = p.value
    return FeedRules(feed=feed, bounds=tuple(bounds(reference_dir, feed, on)), params=params)
