"""The one migration runner: apply a stage's ``migrations/NNNN_name.sql`` files in order.

Each file runs in its own transaction and is recorded in ``meta.schema_migrations`` with a
checksum. Running again applies only what is new, so it is idempotent. One rule for every stage:
an applied migration is never edited. A changed checksum is an error; write a new migration.
Versions are unique across stages (warehouse 0001-0099, KPI layer 0099 and up), so one ledger
serves them all.

DuckLake has no keys, checks, list defaults or indexes (docs/research/ducklake_2026-12.md). A
migration DuckLake rejects gets a sibling ``NNNN_name.lake.sql`` that a lake runs instead: the
same tables, columns, types and nullability without the constraints. The checksum recorded and
checked is the one of the file applied, so a plain file already applied to a single-file
warehouse is never touched to make it lake-ready.

Callers hold the warehouse write lock on a single file (``warehouse.db.writer``). A lake has no
lock: every migration transaction also updates the one row of ``meta.schema_migration_claim``,
so two migrators that overlap conflict at commit and the loser (retried by
``warehouse.db.retrying``) re-reads the ledger and finds the migration applied.
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
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)(\.lake)?\.sql$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    # The DuckLake variant (``NNNN_name.lake.sql``), when the plain file uses what a lake lacks.
    lake_path: Path | None = None

    def file(self, lake: bool) -> Path:
        """The file applied on this kind of warehouse."""
        return self.lake_path if lake and self.lake_path is not None else self.path

    def checksum_for(self, lake: bool) -> str:
        return hashlib.sha256(self.file(lake).read_bytes()).hexdigest()

    @property
    def checksum(self) -> str:
        """The plain file's checksum (what a single-file warehouse records)."""
        return self.checksum_for(lake=False)


class MigrationError(RuntimeError):
    pass


def discover(directory: Path) -> list[Migration]:
    """The migrations of ``directory`` in version order, each with its lake variant if any.

    Refuses a badly named file, two plain files with one version, and a ``.lake.sql`` with no
    plain sibling of the same version and name (a lake-only migration would make the two kinds
    of warehouse diverge)."""
    plain: dict[int, tuple[str, Path]] = {}
    lake: dict[int, tuple[str, Path]] = {}
    for p in sorted(directory.glob("*.sql")):
        m = _NAME.match(p.name)
        if not m:
            raise ValueError(
                f"{p}: migration files are named NNNN_lowercase_name.sql (or .lake.sql)"
            )
        version, name, is_lake_file = int(m.group(1)), m.group(2), m.group(3) is not None
        found = lake if is_lake_file else plain
        if version in found:
            raise ValueError(f"{directory}: two migrations share the version number {version:04d}")
        found[version] = (name, p)
    for version, (name, p) in lake.items():
        if plain.get(version, ("", None))[0] != name:
            raise ValueError(
                f"{p}: a lake variant needs its plain migration {version:04d}_{name}.sql beside it"
            )
    return [
        Migration(v, name, p, lake[v][1] if v in lake else None)
        for v, (name, p) in sorted(plain.items())
    ]


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's default database is a DuckLake (no keys, checks or indexes)."""
    row = _SQL.run(con, "select_default_database_type.sql").fetchone()
    return bool(row and row[0] == "ducklake")


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger and the claim row once. Skipped when they exist: on a lake every
    statement that writes (even a comment) makes a snapshot and conflicts with other writers."""
    row = _SQL.run(con, "count_schema_migration_tables.sql").fetchone()
    if row and row[0] == 2:
        return
    with transaction(con):
        _SQL.run(con, "create_schema_migrations.sql")


def _applied(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str]]:
    applied: dict[int, tuple[str, str]] = {}
    for v, name, checksum in _SQL.run(con, "select_applied_migrations.sql").fetchall():
        if v in applied:
            raise MigrationError(f"migration {v:04d} is recorded twice in meta.schema_migrations")
        applied[v] = (name, checksum)
    return applied


def _is_applied(
    mig: Migration, path: Path, checksum: str, applied: dict[int, tuple[str, str]]
) -> bool:
    """Whether ``mig`` is in the ledger; an error when it was recorded under another name or
    with another checksum (an applied migration was edited)."""
    if mig.version not in applied:
        return False
    name, recorded = applied[mig.version]
    if name != mig.name:
        raise MigrationError(
            f"migration {path.name}: version {mig.version} was applied as {name!r}"
        )
    if recorded != checksum:
        raise MigrationError(
            f"migration {path.name} changed after it was applied; "
            "add a new migration instead of editing an applied one"
        )
    return True


def migrate(con: duckdb.DuckDBPyConnection, directory: Path) -> list[int]:
    """Apply the pending migrations of ``directory``; return the versions applied now."""
    lake = is_lake(con)
    _ensure_ledger(con)
    applied = _applied(con)
    done: list[int] = []
    for mig in discover(directory):
        path = mig.file(lake)
        checksum = mig.checksum_for(lake)
        if _is_applied(mig, path, checksum, applied):
            continue
        with transaction(con):
            # Read again in the migration's own snapshot: another migrator may have committed it
            # since. If that commit is not in this snapshot, both transactions rewrite the claim
            # row, so on a lake one of them fails at commit (and is retried by the caller).
            if _is_applied(mig, path, checksum, _applied(con)):
                continue
            _SQL.run(con, "claim_schema_migrations.sql")
            _SQL.run(con, path)
            _SQL.run(
                con,
                "insert_migration.sql",
                {"version": mig.version, "name": mig.name, "checksum": checksum},
            )
        log.info("applied migration %s", path.name)
        done.append(mig.version)
    return done
