"""The provisional/final rule lookup (status_macros.sql over ref.kpi_status): valid for past
days, falls back instead of crashing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from common.settings import get_settings
from transforms.prepare import prepare, prepare_models
from transforms.standards import load_standards
from transforms.status import lookback_days


def _status(con: duckdb.DuckDBPyConnection, feed: str, day: date, as_of: date, cov: float) -> str:
    row = con.execute("select kpi_status(?, ?::date, ?::date, ?::double)", [feed, day, as_of, cov])
    return str(row.fetchone()[0])  # type: ignore[index]


def test_shipped_rules_cover_backfills_of_past_years() -> None:
    # The look-back rule is the project's own convention, not a dated standard: it must be in
    # force for any day a backfill can reach (the 2012 air rules start the history).
    con = duckdb.connect()
    prepare(con, get_settings())
    for feed in ("air", "water", "waterlogging", "traffic"):
        assert lookback_days(con, date(2012, 1, 1), feed) == 7
    assert lookback_days(con, date(2025, 12, 31)) == 7
    assert _status(con, "traffic", date(2025, 12, 1), date(2025, 12, 31), 100.0) == "final"


def test_lookup_before_the_first_rule_falls_back_to_the_earliest(tmp_path: Path) -> None:
    (tmp_path / "kpi_status.csv").write_text(
        "feed,lookback_days,min_coverage_pct,source,valid_from,note\n"
        "traffic,5,75,test,2026-01-01,\n"
        "traffic,9,75,test,2027-01-01,\n",
        encoding="utf-8",
    )
    con = duckdb.connect()
    load_standards(con, tmp_path)
    prepare_models(con)
    assert lookback_days(con, date(2025, 12, 31), "traffic") == 5
    assert lookback_days(con, date(2026, 6, 1), "traffic") == 5
    assert lookback_days(con, date(2027, 6, 1), "traffic") == 9
    assert lookback_days(con, date(2020, 1, 1)) == 5
    with pytest.raises(KeyError, match="no status rule for feed 'air'"):
        lookback_days(con, date(2026, 6, 1), "air")
