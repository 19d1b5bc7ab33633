"""Shared plumbing of the KPI models: prepare the ``ref``/``kpi`` schemas, run model files over a
range of natural days inside one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb

from common.migrate import migrate
from common.sql import transaction
from transforms import MIGRATIONS_DIR, SQL
from transforms.reference import load_reference

# The local day is cut in this zone (the contract's natural day); a setting could change it.
DEFAULT_TZ = "Asia/Shanghai"


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Load the standards reference tables and apply the KPI migrations (both idempotent)."""
    with transaction(con):
        load_reference(con)
        migrate(con, MIGRATIONS_DIR)


def run_models(
    con: duckdb.DuckDBPyConnection,
    models: Sequence[str],
    start: date,
    end: date,
    tz: str = DEFAULT_TZ,
) -> None:
    """Run ``transforms/sql/<model>.sql`` files in order for the natural days start..end."""
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    params = {"start_date": start, "end_date": end, "tz": tz}
    with transaction(con):
        for model in models:
            SQL.run(con, SQL.root / f"{model}.sql", params)
