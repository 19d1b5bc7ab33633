"""The KPI layer: intermediate models, marts and the KPI pack, rebuilt per natural day."""

from pathlib import Path
from typing import Any

import duckdb

from common.sql import Params, SqlFolder

SQL = SqlFolder(Path(__file__).resolve().parent / "sql")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def scalar(con: duckdb.DuckDBPyConnection, name: str, params: Params = None) -> Any:
    """The first column of the first row of query file ``name`` (None without a row)."""
    row = SQL.run(con, name, params).fetchone()
    return row[0] if row else None
