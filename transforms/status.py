"""Provisional vs final: one rule for every KPI, kept as data in reference/standards/kpi_status.csv.

A day's value is final once the day is older than the late-data look-back (as of the computation
date, ``local_date < as_of - lookback_days``) AND its coverage reaches ``min_coverage_pct``;
until then it is provisional. The SQL models apply the same rule against ``ref.kpi_status``
(H4a's ``air_status_for`` macro, the pack's ``status_rules`` CTE).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from transforms.reference import STANDARDS_DIR

STATUS_FILE = "kpi_status.csv"


@dataclass(frozen=True)
class StatusRule:
    feed: str
    lookback_days: int
    min_coverage_pct: float
    valid_from: date


@lru_cache(maxsize=4)
def load_rules(directory: Path = STANDARDS_DIR) -> tuple[StatusRule, ...]:
    with open(directory / STATUS_FILE, newline="", encoding="utf-8") as fh:
        return tuple(
            StatusRule(
                feed=r["feed"],
                lookback_days=int(r["lookback_days"]),
                min_coverage_pct=float(r["min_coverage_pct"]),
                valid_from=date.fromisoformat(r["valid_from"]),
            )
            for r in csv.DictReader(fh)
        )


def rule_for(feed: str, as_of: date, directory: Path = STANDARDS_DIR) -> StatusRule:
    """The feed's rule in force on ``as_of``; before the first rule's valid_from, that first rule.

    The look-back is the project's own convention, not a dated standard: a backfill of a day
    before it was written must still run (the SQL macros fall back the same way).
    """
    rules = [r for r in load_rules(directory) if r.feed == feed]
    if not rules:
        raise KeyError(f"{STATUS_FILE}: no status rule for feed {feed!r}")
    in_force = [r for r in rules if r.valid_from <= as_of]
    if in_force:
        return max(in_force, key=lambda r: r.valid_from)
    return min(rules, key=lambda r: r.valid_from)


def lookback_days(as_of: date, directory: Path = STANDARDS_DIR) -> int:
    """The longest look-back of any feed: how far back dirty days are recomputed."""
    feeds = {r.feed for r in load_rules(directory)}
    return max(rule_for(f, as_of, directory).lookback_days for f in feeds)


def status_for(
    local_date: date,
    as_of: date,
    coverage_pct: float | None,
    feed: str = "air",
    directory: Path = STANDARDS_DIR,
) -> str:
    rule = rule_for(feed, as_of, directory)
    old_enough = local_date < as_of - timedelta(days=rule.lookback_days)
    covered = coverage_pct is not None and coverage_pct >= rule.min_coverage_pct
    return "final" if old_enough and covered else "provisional"
