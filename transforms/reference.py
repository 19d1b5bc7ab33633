"""Load the standards reference data: every ``reference/standards/*.csv`` becomes ``ref.<stem>``.

Each table is replaced on every load, so the CSV in git is the only source of truth. Every
file must carry ``source`` and ``valid_from`` columns (project rule: reference data says where
each number comes from and since when it applies).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from common.settings import REPO_ROOT

STANDARDS_DIR = REPO_ROOT / "reference" / "standards"
REQUIRED_COLUMNS = ("source", "valid_from")
# The table name is an identifier taken from a file name: only this shape is accepted.
_STEM = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ReferenceError(ValueError):
    """A reference file is unusable (bad name, missing source/valid_from)."""


def reference_files(directory: Path = STANDARDS_DIR) -> list[Path]:
    return sorted(directory.glob("*.csv"))


def load_reference(con: duckdb.DuckDBPyConnection, directory: Path | None = None) -> dict[str, int]:
    """(Re)load every CSV into ``ref.<stem>``. Returns {table: rows}."""
    directory = Path(directory) if directory is not None else STANDARDS_DIR
    con.execute("create schema if not exists ref")
    loaded: dict[str, int] = {}
    for path in reference_files(directory):
        stem = path.stem
        if not _STEM.match(stem):
            raise ReferenceError(f"{path}: file name must match {_STEM.pattern} to become a table")
        csv_sql = "select * from read_csv($path, header = true, auto_detect = true)"
        params = {"path": str(path)}
        # Check the columns before anything is created: a bad file leaves no table behind.
        cols = {r[0] for r in con.execute("describe " + csv_sql, params).fetchall()}
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise ReferenceError(f"{path}: missing required column(s) {', '.join(missing)}")
        # Types auto-detected (numbers, dates); the path is bound. The table name is an identifier
        # (it cannot be bound): it comes from the file name, validated against _STEM above.
        con.execute(f'create or replace table ref."{stem}" as ' + csv_sql, params)
        loaded[f"ref.{stem}"] = con.execute(
            "select count(*) from (" + csv_sql + ")", params
        ).fetchone()[0]  # type: ignore[index]
    return loaded
