"""Provisional vs final: the rule lives in SQL (``transforms/sql/status_macros.sql`` over
``ref.kpi_status``); Python reads it through those macros, never re-implements it."""

from __future__ import annotations

from datetime import date

import duckdb

from transforms import SQL


def lookback_days(con: duckdb.DuckDBPyConnection, as_of: date, feed: str | None = None) -> int:
    """The late-data look-back in force on ``as_of``: of ``feed``, or the longest of any feed
    (how far back dirty days are recomputed). Needs ``prepare()`` on the connection."""
    row = SQL.run(con, "select_lookback_days.sql", {"as_of_date": as_of, "feed": feed}).fetchone()
    if row is None or row[0] is None:
        raise KeyError(f"kpi_status: no status rule for feed {feed!r}")
    return int(row[0])
