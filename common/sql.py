"""The one SQL toolkit: run ``.sql`` files, with parameters bound, inside transactions.

A file holds statements that end with ';' at a line end (our SQL never ends a line with ';'
inside a string). Parameters are DuckDB named parameters (``$local_date``), bound by value and
never formatted in; a statement gets only the parameters its code names as whole words (a
``$name`` inside a comment does not count: DuckDB rejects an extra binding).

The only text ever substituted:
- ``{{feed}}`` in table names, and only with a value of the fixed whitelist ``FEEDS``: the four
  feeds share one table layout, so one template serves them all;
- ``{{path}}`` in a view's DDL (``create view`` is not preparable), a file path from settings
  (never user input), as a string literal with single quotes doubled (``literal``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb

from common.catalogue import FEEDS

Params = Mapping[str, object] | None

# Seconds per file while ``timings()`` is active (the benchmarks' per-model profile).
_timings: dict[str, float] | None = None


@contextlib.contextmanager
def timings() -> Iterator[dict[str, float]]:
    """Collect wall-clock seconds per file (labelled relative to its folder) run inside."""
    global _timings
    outer, _timings = _timings, defaultdict(float)
    try:
        yield _timings
    finally:
        _timings = outer


def statements(path: Path) -> tuple[str, ...]:
    """The statements of a file, comment-only chunks dropped. Re-read when the file changes."""
    st = path.stat()
    return _statements(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=512)
def _statements(path: Path, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    stmts: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            stmts.append("\n".join(current).strip().rstrip(";"))
            current = []
    stmts.append("\n".join(current).strip())
    return tuple(s for s in stmts if _code(s).strip())


def _code(stmt: str) -> str:
    return "\n".join(ln for ln in stmt.splitlines() if not ln.lstrip().startswith("--"))


@lru_cache(maxsize=4096)
def _names(stmt: str) -> frozenset[str]:
    return frozenset(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)\b", _code(stmt)))


def _bind(stmt: str, params: Params) -> dict[str, object] | None:
    if not params:
        return None
    names = _names(stmt)
    used = {k: v for k, v in params.items() if k in names}
    return used or None


def literal(value: str) -> str:
    """A SQL string literal: single quotes doubled, so the value can never end the string."""
    if "\x00" in value:
        raise ValueError("NUL byte in a SQL literal")
    return "'" + value.replace("'", "''") + "'"


def _substitute(stmt: str, file: Path, feed: str | None, path: str | None) -> str:
    if "{{feed}}" in stmt:
        if feed not in FEEDS:
            raise ValueError(f"{file}: feed {feed!r} is not one of {FEEDS}")
        stmt = stmt.replace("{{feed}}", feed)
    if "{{path}}" in stmt:
        if path is None:
            raise ValueError(f"{file}: {{{{path}}}} needs a path")
        stmt = stmt.replace("{{path}}", literal(path))
    return stmt


@dataclass(frozen=True)
class SqlFolder:
    """A stage's folder of ``.sql`` files; names are paths relative to it (``core/x.sql``)."""

    root: Path

    def path(self, name: str | Path) -> Path:
        return name if isinstance(name, Path) else self.root / name

    def run(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str | Path,
        params: Params = None,
        *,
        feed: str | None = None,
        path: str | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """Execute every statement of a file; returns the connection, so the last statement's
        result can be fetched."""
        file = self.path(name)
        t0 = time.perf_counter()
        for raw in statements(file):
            stmt = _substitute(raw, file, feed, path)
            con.execute(stmt, _bind(stmt, params))
        if _timings is not None:
            _timings[self._label(file)] += time.perf_counter() - t0
        return con

    def relation(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str | Path,
        params: Params = None,
        *,
        feed: str | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """A one-statement query file as a relation (``.to_arrow_table()`` without a copy)."""
        file = self.path(name)
        stmts = statements(file)
        if len(stmts) != 1:
            raise ValueError(f"{file}: expected exactly one statement, found {len(stmts)}")
        stmt = _substitute(stmts[0], file, feed, None)
        return con.sql(stmt, params=_bind(stmt, params))

    def _label(self, file: Path) -> str:
        p = file.resolve()
        base = self.root.resolve().parent
        return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)


def run_path(
    con: duckdb.DuckDBPyConnection, file: Path, params: Params = None
) -> duckdb.DuckDBPyConnection:
    """Run a file given by its full path (migrations, fixtures)."""
    return SqlFolder(file.parent).run(con, file, params)


# Open transactions per connection: DuckDB has no nesting, and a "begin" inside a transaction
# fails and aborts it, so nesting is tracked here rather than probed.
_depth: dict[int, int] = {}


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction; inside another one opened through this helper it joins the outer one,
    so a step can be run alone or as part of a larger unit of work."""
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
