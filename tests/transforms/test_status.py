"""The provisional/final rule lookup: valid for past days, falls back instead of crashing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from transforms.status import load_rules, lookback_days, rule_for, status_for


def test_shipped_rules_cover_backfills_of_past_years() -> None:
    # The look-back rule is the project's own convention, not a dated standard: it must be in
    # force for any day a backfill can reach (the 2012 air rules start the history).
    for feed in ("air", "water", "waterlogging", "traffic"):
        assert rule_for(feed, date(2012, 1, 1)).lookback_days == 7
    assert lookback_days(date(2025, 12, 31)) == 7
    assert status_for(date(2025, 12, 1), date(2025, 12, 31), 100.0, "traffic") == "final"


def test_lookup_before_the_first_rule_falls_back_to_the_earliest(tmp_path: Path) -> None:
    (tmp_path / "kpi_status.csv").write_text(
        "feed,lookback_days,min_coverage_pct,source,valid_from,note\n"
        "traffic,5,75,test,2026-01-01,\n"
        "traffic,9,75,test,2027-01-01,\n",
        encoding="utf-8",
    )
    load_rules.cache_clear()
    try:
        assert rule_for("traffic", date(2025, 12, 31), tmp_path).lookback_days == 5
        assert rule_for("traffic", date(2026, 6, 1), tmp_path).lookback_days == 5
        assert rule_for("traffic", date(2027, 6, 1), tmp_path).lookback_days == 9
        assert lookback_days(date(2020, 1, 1), tmp_path) == 5
        with pytest.raises(KeyError, match="no status rule for feed 'air'"):
            rule_for("air", date(2026, 6, 1), tmp_path)
    finally:
        load_rules.cache_clear()
