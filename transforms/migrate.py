"""Apply the KPI layer's DDL: every ``transforms/migrations/NNNN_name.sql`` in name order.

Files are idempotent (``create ... if not exists``). Each applied file is recorded in
``meta.transform_migrations`` with a checksum; an unchanged file is skipped, a changed one is
re-run (still idempotent) so a developer's edit reaches an existing warehouse.
H4a (air) owns 0100–0199, H4b 0200–0299. Warehouse core DDL is H3's (warehouse.migrate).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from transforms.sqlrun import run_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Schemas the KPI layer writes; created before any file so numbering never matters for them.
KPI_SCHEMAS = ("meta", "int", "kpi", "ref")
# Identifiers cannot be bound: one literal statement per schema.
_CREATE_SCHEMA = {
    "meta": "create schema if not exists meta",
    "int": 'create schema if not exists "int"',
    "kpi": "create schema if not exists kpi",
    "ref": "create schema if not exists ref",
}


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())


def apply(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Create the KPI schemas and run every new or changed migration. Returns names applied."""
    for schema in KPI_SCHEMAS:
        con.execute(_CREATE_SCHEMA[schema])
    con.execute(
        "create table if not exists meta.transform_migrations ("
        " name varchar primary key, checksum varchar not null, applied_at timestamptz not null)"
    )
    done = dict(con.execute("select name, checksum from meta.transform_migrations").fetchall())
    applied: list[str] = []
    for path in migration_files(directory):
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        if done.get(path.name) == checksum:
            continue
        run_file(con, path)
        con.execute(
            "insert or replace into meta.transform_migrations values (?, ?, now())",
            [path.name, checksum],
        )
        applied.append(path.name)
    return applied
