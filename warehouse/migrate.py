"""Apply ``warehouse/migrations/NNNN_name.sql`` in order, each in its own transaction.

Applied files are recorded in ``meta.schema_migrations`` with a checksum; running again applies
only what is new (idempotent). An applied file must never change: a changed checksum is an error,
write a new migration instead. Callers hold the warehouse write lock (``warehouse.db.writer``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse import sqlfiles

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
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


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
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


class MigrationError(RuntimeError):
    pass


def migrate(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending migrations; return the versions applied now (empty when up to date)."""
    sqlfiles.run(con, "meta/bootstrap.sql")
    applied = {
        v: (name, checksum)
        for v, name, checksum in sqlfiles.run(con, "meta/applied.sql").fetchall()
    }
    done: list[int] = []
    for mig in discover(directory):
        if mig.version in applied:
            if applied[mig.version][1] != mig.checksum:
                raise MigrationError(
                    f"migration {mig.path.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        con.execute("begin transaction")
        try:
            sqlfiles.run(con, mig.path)
            sqlfiles.run(
                con,
                "meta/record_migration.sql",
                {"version": mig.version, "name": mig.name, "checksum": mig.checksum},
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        log.info("applied warehouse migration %s", mig.path.name)
        done.append(mig.version)
    return done
