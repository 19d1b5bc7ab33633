"""Run the warehouse's .sql files: statements end with ';' at a line end; params are bound.

Parameters are DuckDB named parameters (``$run_id``), bound by value, never formatted in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import duckdb

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
    con: duckdb.DuckDBPyConnection, name: str | Path, params: Mapping[str, object] | None = None
) -> duckdb.DuckDBPyConnection:
    """Execute every statement of a file, binding only the parameters each statement uses.

    Returns the connection so the result of the last statement can be fetched.
    """
    path = name if isinstance(name, Path) else sql_path(name)
    for stmt in statements(path):
        used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", stmt)}
        con.execute(stmt, used or None)
    return con
