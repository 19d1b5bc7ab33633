"""Copy a single-file warehouse into a DuckLake, verified table by table.

``citypipe warehouse migrate --to URL`` (citypipe/warehouse_cli.py) is the way in; this module
does the work for any lake the settings name:

1. Run the migrations on the target (the caller passes every stage's folder: the warehouse does
   not import the KPI layer), so the lake's tables are the ones the code expects.
2. Refuse a target whose tables already hold rows (:class:`TargetNotEmpty`), unless ``force``:
   then each copied table is emptied first, in the same transaction as its copy.
3. Attach the file read-only beside the lake and copy every base table but the migration ledger
   (the target's own migrations fill that), one transaction per table, retried on a lost race.
   Columns are taken by name in the target's order. A table no migration creates (``ref.*``,
   rebuilt from the standards folder by every KPI run) is created from the source.
4. Verify each table on both sides, after the commit: the row count and an order-independent
   checksum (the sum of every row's hash, the row as text with its columns in name order).

Table names are identifiers read from the source's catalog, never user input. DuckDB takes no
bound parameters for identifiers, so they are double-quoted (:func:`_qualified`) for the few
statements that need one (create schema, delete); reads and inserts go through DuckDB's
relation API.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from common.migrate import migrate
from common.settings import Settings
from common.sql import literal, transaction
from warehouse import SQL, db

log = logging.getLogger(__name__)

SOURCE = "src"  # the attached single file
TARGET = "lake"  # the lake, as warehouse.db attaches it


class TransferError(RuntimeError):
    """The copy cannot start (bad source or target); nothing was copied."""


class TargetNotEmpty(TransferError):
    """The lake already holds rows in tables the copy would fill."""


@dataclass(frozen=True)
class TableCopy:
    """One table copied: counts and checksums read on each side after the commit."""

    schema: str
    table: str
    source_rows: int
    target_rows: int
    source_checksum: int
    target_checksum: int
    created: bool  # no migration makes it: created from the source
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def verified(self) -> bool:
        return (self.source_rows, self.source_checksum) == (self.target_rows, self.target_checksum)


def lake_settings(settings: Settings, url: str, data_path: str | None = None) -> Settings:
    """``settings`` with the warehouse ``url`` (and data path) instead: built anew, since the
    derived properties (``warehouse_target`` ...) are cached on the instance. Raises
    ``WarehouseUrlError`` for a URL that names no backend."""
    fields = settings.model_dump()
    fields["warehouse"] = url
    if data_path is not None:
        fields["warehouse_data_path"] = data_path
    target = type(settings)(**fields)
    target.warehouse_target  # noqa: B018 (parse the URL now, before anything is opened)
    return target


def copy_to_lake(
    source: Path,
    target: Settings,
    migration_dirs: Sequence[Path],
    *,
    force: bool = False,
) -> list[TableCopy]:
    """Copy the DuckDB file ``source`` into the lake ``target`` names (see the module doc);
    one :class:`TableCopy` per table, in name order. Check ``verified`` on each."""
    if not target.warehouse_target.is_lake:
        raise TransferError(
            f"the target must be a DuckLake (ducklake:sqlite:... or ducklake:postgres:...),"
            f" not {target.warehouse_target.describe()}"
        )
    if not source.is_file():
        raise TransferError(f"no single-file warehouse at {source}")
    con = db.connect(target, read_only=False)
    try:
        for directory in migration_dirs:
            db.retrying(target, functools.partial(migrate, con, directory), what="migrations")
        with _attached(con, source):
            tables = SQL.run(con, "transfer/select_tables.sql", {"database": SOURCE}).fetchall()
            existing = {
                (s, t)
                for s, t in SQL.run(
                    con, "transfer/select_tables.sql", {"database": TARGET}
                ).fetchall()
            }
            filled = [f"{s}.{t}" for s, t in sorted(existing) if _count(con, TARGET, s, t) > 0]
            if filled and not force:
                raise TargetNotEmpty(
                    f"the target already holds rows in {len(filled)} table(s)"
                    f" ({', '.join(filled[:5])}{', ...' if len(filled) > 5 else ''});"
                    " use --force to replace their rows"
                )
            return [
                _copy_table(con, target, schema, table, created=(schema, table) not in existing)
                for schema, table in tables
            ]
    finally:
        con.close()


@contextlib.contextmanager
def _attached(con: duckdb.DuckDBPyConnection, source: Path) -> Iterator[None]:
    # ATTACH takes no bound parameters: the path (from the command line or settings) is a
    # quoted literal, as in warehouse.db. READ_ONLY: a copy never changes its source, and
    # DuckDB refuses it while a writer holds the file.
    con.execute(f"ATTACH {literal(str(source))} AS {SOURCE} (READ_ONLY)")
    try:
        yield
    finally:
        con.execute(f"DETACH {SOURCE}")


def _copy_table(
    con: duckdb.DuckDBPyConnection, settings: Settings, schema: str, table: str, *, created: bool
) -> TableCopy:
    started = time.monotonic()
    source_columns = _columns(con, SOURCE, schema, table)

    def copy() -> None:
        with transaction(con):
            rows = con.table(_qualified(SOURCE, schema, table))
            if created:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_qualified(TARGET, schema)}")
                rows.create(_qualified(TARGET, schema, table))
                return
            target_columns = _columns(con, TARGET, schema, table)
            missing = [c for c in target_columns if c not in source_columns]
            if missing:
                raise TransferError(
                    f"{schema}.{table}: the source has no column(s) {', '.join(missing)};"
                    " bring the file up to date first (any writer migrates it)"
                )
            con.execute(f"DELETE FROM {_qualified(TARGET, schema, table)}")
            rows.select(*[duckdb.ColumnExpression(c) for c in target_columns]).insert_into(
                _qualified(TARGET, schema, table)
            )

    db.retrying(settings, copy, what=f"copy {schema}.{table}")
    names = sorted(source_columns)
    src_rows, src_sum = _checksum(con, SOURCE, schema, table, names)
    dst_rows, dst_sum = _checksum(con, TARGET, schema, table, names)
    result = TableCopy(
        schema=schema,
        table=table,
        source_rows=src_rows,
        target_rows=dst_rows,
        source_checksum=src_sum,
        target_checksum=dst_sum,
        created=created,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "copied %s: %d rows, %s", result.name, dst_rows, "ok" if result.verified else "MISMATCH"
    )
    return result


def _checksum(
    con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str, names: list[str]
) -> tuple[int, int]:
    rel = con.table(_qualified(database, schema, table))
    # A temporary view (never a view in the lake): the checksum SQL reads it by name.
    con.register("transfer_rows", rel.select(*[duckdb.ColumnExpression(c) for c in names]))
    try:
        row = SQL.run(con, "transfer/checksum_rows.sql").fetchone()
    finally:
        con.unregister("transfer_rows")
    assert row is not None  # an aggregate: always one row
    return int(row[0]), int(row[1])


def _columns(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> list[str]:
    params = {"database": database, "schema": schema, "table": table}
    return [r[0] for r in SQL.run(con, "transfer/select_columns.sql", params).fetchall()]


def _count(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> int:
    row = con.table(_qualified(database, schema, table)).count("*").fetchone()
    return int(row[0]) if row else 0


def _qualified(*parts: str) -> str:
    """A qualified name with every part double-quoted (quotes doubled): an identifier from the
    catalog can never end the quoting."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def format_report(copies: Sequence[TableCopy]) -> str:
    """One line per table: rows and checksum on each side, and the verdict."""
    header = ("table", "source rows", "target rows", "checksum", "verified")
    rows = [header]
    for c in copies:
        checksum = f"{c.source_checksum % 2**64:016x}"
        if c.target_checksum != c.source_checksum:
            checksum += f" != {c.target_checksum % 2**64:016x}"
        verdict = "ok" if c.verified else "MISMATCH"
        rows.append(
            (
                c.name + (" (created)" if c.created else ""),
                str(c.source_rows),
                str(c.target_rows),
                checksum,
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for i, r in enumerate(rows):
        cells = [
            c.ljust(w) if j in (0, 3) else c.rjust(w)
            for j, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
