"""The one migration runner: apply a stage's ``migrations/NNNN_name.sql`` files in order.

Each file runs in its own transaction and is recorded in ``meta.schema_migrations`` with a
checksum. Running again applies only what is new, so it is idempotent. One rule for every stage:
an applied migration is never edited. A changed checksum is an error; write a new migration.
Versions are unique across stages (warehouse 0001-0099, KPI layer 0099 and up), so one ledger
serves them all. Callers hold the warehouse write lock (``warehouse.db.writer``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from common.sql import SqlFolder, transaction

_SQL = SqlFolder(Path(__file__).resolve().parent / "sql")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover(directory: Path) -> list[Migration]:
    found: list[Migration] = []
    for p in sorted(directory.glob("*.sql")):
        m = _NAME.match(p.name)
        if not m:
            raise ValueError(f"{p}: migration files are named NNNN_lowercase_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), p))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{directory}: two migrations share a version number")
    return found


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's default database is a DuckLake (no keys, checks or indexes)."""
    row = _SQL.run(con, "select_default_database_type.sql").fetchone()
    return bool(row and row[0] == "ducklake")


def migrate(con: duckdb.DuckDBPyConnection, directory: Path) -> list[int]:
    """Apply the pending migrations of ``directory``; return the versions applied now."""
    _SQL.run(con, "create_schema_migrations.sql")
    applied = {
        v: (name, checksum)
        for v, name, checksum in _SQL.run(con, "select_applied_migrations.sql").fetchall()
    }
    done: list[int] = []
    for mig in discover(directory):
        if mig.version in applied:
            name, checksum = applied[mig.version]
            if name != mig.name:
                raise MigrationError(
                    f"migration {mig.path.name}: version {mig.version} was applied as {name!r}"
                )
            if checksum != mig.checksum:
                raise MigrationError(
                    f"migration {mig.path.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        with transaction(con):
            _SQL.run(con, mig.path)
            _SQL.run(
                con,
                "insert_migration.sql",
                {"version": mig.version, "name": mig.name, "checksum": mig.checksum},
            )
        log.info("applied migration %s", mig.path.name)
        done.append(mig.version)
    return done
