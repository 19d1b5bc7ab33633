"""Run the warehouse's .sql files: statements end with ';' at a line end; params are bound.

Parameters are DuckDB named parameters (``$run_id``), bound by value, never formatted in.
The only text substituted is ``{{feed}}`` in table names, and only with a value of the fixed
whitelist ``FEEDS``: the four feeds share one table layout, so one template serves them all.
One exception where DuckDB cannot bind: a view's DDL (``create view`` is not preparable), so
``{{path}}`` takes a file path from settings (never user input) as a string literal, quoted by
doubling single quotes (``literal``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import duckdb

from citypipe.catalogue import FEEDS

SQL_DIR = Path(__file__).resolve().parent / "sql"


@lru_cache(maxsize=256)
def statements(path: Path) -> tuple[str, ...]:
    """Split a file into statements. Our SQL never ends a line with ';' inside a string."""
    stmts: list[str] = []
    current: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            stmts.append("\n".join(current).strip().rstrip(";"))
            current = []
    stmts.append("\n".join(current).strip())
    return tuple(s for s in stmts if _has_code(s))


def _has_code(stmt: str) -> bool:
    return any(ln.strip() and not ln.strip().startswith("--") for ln in stmt.splitlines())


def sql_path(name: str) -> Path:
    """``name`` like ``"core/merge_air.sql"``, relative to warehouse/sql."""
    return SQL_DIR / name


def run(
    con: duckdb.DuckDBPyConnection,
    name: str | Path,
    params: Mapping[str, object] | None = None,
    *,
    feed: str | None = None,
    path: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Execute every statement of a file, binding only the parameters each statement uses.

    ``feed`` fills ``{{feed}}`` placeholders (table names) and must be one of ``FEEDS``;
    ``path`` fills ``{{path}}`` as a quoted string literal (view DDL only, see module doc).
    Returns the connection so the result of the last statement can be fetched.
    """
    file = name if isinstance(name, Path) else sql_path(name)
    for raw in statements(file):
        stmt = _identifiers(raw, feed)
        if "{{path}}" in stmt:
            if path is None:
                raise ValueError(f"{file}: {{{{path}}}} needs a path")
            stmt = stmt.replace("{{path}}", literal(path))
        used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", stmt)}
        con.execute(stmt, used or None)
    return con


def literal(value: str) -> str:
    """A SQL string literal: single quotes doubled, so the value can never end the string."""
    if "\x00" in value:
        raise ValueError("NUL byte in a SQL literal")
    return "'" + value.replace("'", "''") + "'"


def _identifiers(stmt: str, feed: str | None) -> str:
    if "{{feed}}" not in stmt:
        return stmt
    if feed not in FEEDS:
        raise ValueError(f"feed {feed!r} is not one of {FEEDS}")
    return stmt.replace("{{feed}}", feed)


def relation(
    con: duckdb.DuckDBPyConnection,
    name: str | Path,
    params: Mapping[str, object] | None = None,
    *,
    feed: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """A one-statement query file as a relation (``.to_arrow_table()`` without an extra copy)."""
    path = name if isinstance(name, Path) else sql_path(name)
    stmts = statements(path)
    if len(stmts) != 1:
        raise ValueError(f"{path}: expected exactly one statement, found {len(stmts)}")
    stmt = _identifiers(stmts[0], feed)
    used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", stmt)}
    return con.sql(stmt, params=used or None)
