"""Run the project's .sql files: one file = one model, statements separated by ';' at line end.

Parameters are DuckDB named parameters (``$local_date``) bound by value, never formatted in.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import duckdb

SQL_ROOT = Path(__file__).resolve().parent / "sql"

# Seconds per model file while ``timings()`` is active (the benchmark's per-model profile).
_timings: dict[str, float] | None = None


@contextlib.contextmanager
def timings() -> Iterator[dict[str, float]]:
    """Collect wall-clock seconds per file (path relative to the repo's transforms/) run inside."""
    global _timings
    outer, _timings = _timings, defaultdict(float)
    try:
        yield _timings
    finally:
        _timings = outer


def read_statements(path: Path) -> tuple[str, ...]:
    """Split a file into statements. Our SQL never puts ';' at a line end inside a string."""
    st = Path(path).stat()
    # Cache keyed on the file's mtime and size too, so an edited file is re-read.
    return _read_statements(Path(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _read_statements(path: Path, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    text = path.read_text(encoding="utf-8")
    stmts: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            stmts.append("\n".join(current).strip().rstrip(";"))
            current = []
    tail = "\n".join(current).strip()
    if tail and not all(ln.strip().startswith("--") or not ln.strip() for ln in current):
        stmts.append(tail)
    return tuple(s for s in stmts if _has_code(s))


def _has_code(stmt: str) -> bool:
    return any(ln.strip() and not ln.strip().startswith("--") for ln in stmt.splitlines())


def run_file(
    con: duckdb.DuckDBPyConnection, path: Path, params: Mapping[str, object] | None = None
) -> None:
    """Execute every statement of ``path``, binding only the parameters each statement uses."""
    t0 = time.perf_counter()
    for stmt in read_statements(Path(path)):
        # A "$name" in a comment is not a parameter (DuckDB would reject the extra binding).
        code = "\n".join(ln for ln in stmt.splitlines() if not ln.lstrip().startswith("--"))
        used = {k: v for k, v in (params or {}).items() if f"${k}" in code}
        con.execute(stmt, used or None)
    if _timings is not None:
        _timings[_label(Path(path))] += time.perf_counter() - t0


def _label(path: Path) -> str:
    p = path.resolve()
    return str(p.relative_to(SQL_ROOT.parent)) if p.is_relative_to(SQL_ROOT.parent) else str(p)


def run_files(
    con: duckdb.DuckDBPyConnection, paths: list[Path], params: Mapping[str, object] | None = None
) -> None:
    for p in paths:
        run_file(con, p, params)
