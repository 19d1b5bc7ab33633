"""The standards reference tables: every ``<reference_dir>/standards/*.csv`` becomes ``ref.<stem>``.

The ``ref`` schema is rebuilt from the folder on every load, so the CSVs are the only source of
truth. Every file must carry ``source`` and ``valid_from`` columns (project rule: reference data
says where each number comes from and since when it applies). The folder comes from settings
(``CITYPIPE_REFERENCE_DIR``), as the site catalogue's does.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from common.settings import Settings
from transforms import SQL

REQUIRED_COLUMNS = ("source", "valid_from")
# The table name is an identifier taken from a file name: only this shape is accepted.
_STEM = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class StandardsError(ValueError):
    """A standards file is unusable (bad name, missing source/valid_from)."""


def standards_dir(settings: Settings) -> Path:
    return settings.reference_dir / "standards"


def standards_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.csv"))


def load_standards(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, int]:
    """(Re)build ``ref`` from the CSVs of ``directory``. Returns {table: rows}."""
    files = standards_files(Path(directory))
    relations = []
    # Check every file before anything is replaced: a bad file leaves the old tables in place.
    for path in files:
        if not _STEM.match(path.stem):
            raise StandardsError(f"{path}: file name must match {_STEM.pattern} to become a table")
        # Types auto-detected (numbers, dates); the path is an argument, never SQL text.
        rel = con.read_csv(str(path), header=True)
        missing = [c for c in REQUIRED_COLUMNS if c not in rel.columns]
        if missing:
            raise StandardsError(f"{path}: missing required column(s) {', '.join(missing)}")
        relations.append((path.stem, rel))
    SQL.run(con, "queries/reset_ref_schema.sql")
    loaded: dict[str, int] = {}
    for stem, rel in relations:
        # The name goes to DuckDB's relation API (no SQL text is built); _STEM validated it.
        table = f"ref.{stem}"
        rel.create(table)
        loaded[table] = con.table(table).shape[0]
    return loaded
