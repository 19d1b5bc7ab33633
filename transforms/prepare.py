"""Before any KPI model runs: the ``ref`` tables from the standards folder, the KPI migrations
and the status macros; and the one way to run day-range model files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb

from common.migrate import migrate
from common.settings import Settings
from common.sql import transaction
from transforms import MIGRATIONS_DIR, SQL
from transforms.standards import load_standards, standards_dir

# The provisional/final rule (the only definition of it), as temp macros over ref.kpi_status.
STATUS_MACROS = "status_macros.sql"


def prepare(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load the standards reference tables, then ``prepare_models`` (all idempotent). A KPI run
    calls it once; the feed models assume it was called."""
    with transaction(con):
        load_standards(con, standards_dir(settings))
        prepare_models(con)


def prepare_models(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the KPI migrations and define the status macros on this connection, over the
    ``ref`` tables already loaded (by an earlier step of the same run)."""
    with transaction(con):
        migrate(con, MIGRATIONS_DIR)
        SQL.run(con, STATUS_MACROS)


def run_models(
    con: duckdb.DuckDBPyConnection, models: Sequence[str], start: date, end: date, tz: str
) -> None:
    """Run ``transforms/sql/<model>.sql`` files in order for the natural days start..end."""
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    params = {"start_date": start, "end_date": end, "tz": tz}
    with transaction(con):
        for model in models:
            SQL.run(con, f"{model}.sql", params)
