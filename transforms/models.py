"""Shared plumbing of the KPI models: prepare the ``ref``/``kpi`` schemas, run model files over a
range of natural days inside one transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date

import duckdb

from transforms.migrate import apply
from transforms.reference import load_reference
from transforms.sqlrun import SQL_ROOT, run_file

# The local day is cut in this zone (the contract's natural day); a setting could change it.
DEFAULT_TZ = "Asia/Shanghai"


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Load the standards reference tables and apply the KPI migrations (both idempotent)."""
    with transaction(con):
        load_reference(con)
        apply(con)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A transaction, or nothing when the caller already opened one (DuckDB has no nesting)."""
    try:
        con.execute("begin transaction")
    except duckdb.TransactionException:
        owned = False
    else:
        owned = True
    if not owned:
        yield
        return
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


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
            run_file(con, SQL_ROOT / f"{model}.sql", params)
