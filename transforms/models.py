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


# Open transactions per connection: DuckDB has no nesting, and a failed "begin" inside a
# transaction aborts it, so nesting is tracked here rather than probed.
_depth: dict[int, int] = {}


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A transaction; inside another one (opened through this helper) it joins the outer one."""
    key = id(con)
    if _depth.get(key, 0) > 0:
        _depth[key] += 1
        try:
            yield
        finally:
            _depth[key] -= 1
        return
    con.execute("begin transaction")
    _depth[key] = 1
    try:
        yield
    except BaseException:
        _depth.pop(key, None)
        con.execute("rollback")
        raise
    _depth.pop(key, None)
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
