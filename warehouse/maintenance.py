"""Housekeeping of the warehouse: compact small files, expire old snapshots, report the size.

On a DuckLake backend (``lake``), in this order, each step its own transaction retried on a
lost race with a concurrent writer (:func:`warehouse.db.retrying`):

1. ``ducklake_merge_adjacent_files``: every load commits at least one Parquet file per table it
   touches (a 10-minute DAG makes ~150 a day), and many small files slow every scan. The
   merged files keep row lineage, so time travel still reaches older snapshots.
2. ``ducklake_expire_snapshots`` older than ``settings.snapshot_retention_days``: time travel
   ("the KPI pack as published on date X") then reaches back that far and no further.
   The snapshots to expire are picked by their typed time here and passed as ``versions``:
   ``older_than`` on a SQLite catalog compares by UTC day (see :func:`_cleanup_cutoff`).
3. ``ducklake_cleanup_old_files``: delete the files scheduled for deletion (replaced by the
   merge, or only referenced by expired snapshots) at least ``cleanup_grace`` ago. The grace
   lets a reader that planned its scan before the merge finish reading the old files; a daily
   run removes yesterday's leftovers. A zero grace removes them all at once.

Before and after: the catalog's size (the SQLite file with its WAL, or the bytes of the lake's
PostgreSQL schema), the current data and delete files (count, bytes) and the snapshots kept.

On the single DuckDB file there are no files to merge and no snapshots: ``CHECKPOINT`` writes
the WAL into the file and reclaims free blocks (DuckDB's own compaction); the file's size is
reported. It takes the exclusive warehouse lock, as any writer.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from common.settings import Settings
from warehouse import SQL, db

log = logging.getLogger(__name__)

# Files replaced less than this long ago stay on disk for readers still scanning them.
CLEANUP_GRACE = timedelta(hours=1)


class NoWarehouse(FileNotFoundError):
    """There is no warehouse to maintain yet (no load or migration has run)."""


@dataclass(frozen=True)
class StorageFigures:
    """The warehouse's footprint at one moment.

    ``catalog_bytes``: the DuckDB file (single file), the SQLite catalog with its WAL, or the
    lake's tables in its PostgreSQL schema. The other fields are None on the single file.
    ``data_files``/``data_bytes``: the Parquet files the current snapshot reads (from
    ``ducklake_table_info``); ``delete_files``/``delete_bytes``: its delete files.
    """

    catalog_bytes: int
    tables: int | None = None
    data_files: int | None = None
    data_bytes: int | None = None
    delete_files: int | None = None
    delete_bytes: int | None = None
    snapshots: int | None = None
    oldest_snapshot_at: datetime | None = None


@dataclass(frozen=True)
class MaintenanceResult:
    """What one maintenance run did and the footprint before and after it."""

    backend: str  # file | sqlite | postgres
    target: str  # the warehouse, described without secrets
    before: StorageFigures
    after: StorageFigures
    retention_days: int | None = None  # None on the single file
    expired_before: datetime | None = None  # snapshots older than this were expired
    snapshots_expired: int = 0
    files_removed: int = 0
    seconds: float = 0.0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (ISO timestamps): for XCom and ``--format json``."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def maintain(
    settings: Settings,
    *,
    retention_days: int | None = None,
    cleanup_grace: timedelta = CLEANUP_GRACE,
    now: datetime | None = None,
) -> MaintenanceResult:
    """Run the maintenance of the configured warehouse (see the module doc) and report.

    ``retention_days`` defaults to ``settings.snapshot_retention_days``; ``now`` (tz-aware)
    anchors the retention cut-off (default: the current time); files are removed once
    scheduled for deletion ``cleanup_grace`` before the clean-up step.
    """
    if not db.exists(settings):
        raise NoWarehouse(
            f"no warehouse at {settings.warehouse_target.describe()} yet (no load has run)"
        )
    started = datetime.now(UTC)
    now = now or started
    if settings.warehouse_target.is_lake:
        days = settings.snapshot_retention_days if retention_days is None else retention_days
        if days < 0:
            raise ValueError(f"retention_days must be >= 0, not {days}")
        result = _maintain_lake(settings, days, now, cleanup_grace)
    else:
        result = _maintain_file(settings)
    seconds = (datetime.now(UTC) - started).total_seconds()
    result = replace(result, seconds=round(seconds, 3))
    log.info("warehouse maintenance: %s", summary(result))
    return result


def _maintain_file(settings: Settings) -> MaintenanceResult:
    path = settings.warehouse_path
    before = StorageFigures(catalog_bytes=_file_bytes(path))
    with db.writer(settings, migrate=False) as con:
        SQL.run(con, "maintenance/checkpoint.sql")
    return MaintenanceResult(
        backend="file",
        target=settings.warehouse_target.describe(),
        before=before,
        after=StorageFigures(catalog_bytes=_file_bytes(path)),
        note=(
            "single DuckDB file: CHECKPOINT only (DuckDB compacts its own file; no small files"
            " to merge, no snapshots to expire)"
        ),
    )


def _maintain_lake(
    settings: Settings, retention_days: int, now: datetime, grace: timedelta
) -> MaintenanceResult:
    expired_before = now - timedelta(days=retention_days)
    con = db.connect(settings, read_only=False)
    try:
        before = _lake_figures(con, settings)

        def merge() -> None:
            SQL.run(con, "maintenance/merge_adjacent_files.sql")

        def expire() -> int:
            found = SQL.run(
                con, "maintenance/select_expirable_snapshots.sql", {"older_than": expired_before}
            ).fetchall()
            if not found:
                return 0  # the call rejects an empty list
            versions = [row[0] for row in found]
            rows = SQL.run(con, "maintenance/expire_snapshots.sql", {"versions": versions})
            return len(rows.fetchall())

        def cleanup() -> int:
            if grace <= timedelta(0):
                rows = SQL.run(con, "maintenance/cleanup_all_old_files.sql")
                return len(rows.fetchall())
            # Measured at cleanup time: the merge above scheduled its replaced files just now.
            older_than = _cleanup_cutoff(settings, datetime.now(UTC) - grace)
            rows = SQL.run(con, "maintenance/cleanup_old_files.sql", {"older_than": older_than})
            return len(rows.fetchall())

        db.retrying(settings, merge, what="merge_adjacent_files")
        expired = db.retrying(settings, expire, what="expire_snapshots")
        removed = db.retrying(settings, cleanup, what="cleanup_old_files")
        after = _lake_figures(con, settings)
    finally:
        con.close()
    return MaintenanceResult(
        backend=settings.warehouse_target.kind,
        target=settings.warehouse_target.describe(),
        before=before,
        after=after,
        retention_days=retention_days,
        expired_before=expired_before,
        snapshots_expired=expired,
        files_removed=removed,
        note=_cleanup_note(settings, grace),
    )


def _cleanup_note(settings: Settings, grace: timedelta) -> str:
    if grace <= timedelta(0):
        return "every file scheduled for deletion was removed (no grace)"
    since = " or since the last UTC midnight (SQLite catalog)" if _day_granular(settings) else ""
    return (
        f"files scheduled for deletion less than {grace.total_seconds() / 60:g} min ago{since}"
        " stay for a later run"
    )


def _day_granular(settings: Settings) -> bool:
    return settings.warehouse_target.kind == "sqlite"


def _cleanup_cutoff(settings: Settings, cutoff: datetime) -> datetime:
    """The ``older_than`` to pass for files scheduled before ``cutoff``.

    On a SQLite catalog DuckLake 0.3 compares ``older_than`` by UTC day: a cut-off at any time
    of day D removes every file scheduled on D, even after it (measured; PostgreSQL compares
    exactly). So there it becomes the end of the day before: files wait for the next UTC
    midnight past their grace, and never go early.
    """
    if not _day_granular(settings):
        return cutoff
    day_start = cutoff.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day_start - timedelta(microseconds=1)


def _lake_figures(con: duckdb.DuckDBPyConnection, settings: Settings) -> StorageFigures:
    files = SQL.run(con, "maintenance/select_data_files.sql").fetchone()
    snaps = SQL.run(con, "maintenance/count_snapshots.sql").fetchone()
    assert files is not None and snaps is not None  # aggregates always return a row
    n_tables, n_data, data_bytes, n_delete, delete_bytes = files
    return StorageFigures(
        catalog_bytes=_catalog_bytes(con, settings),
        tables=n_tables,
        data_files=n_data,
        data_bytes=data_bytes,
        delete_files=n_delete,
        delete_bytes=delete_bytes,
        snapshots=snaps[0],
        oldest_snapshot_at=snaps[1],
    )


def _catalog_bytes(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    target = settings.warehouse_target
    if target.kind == "sqlite":
        return _file_bytes(settings.warehouse_path)
    schema = target.metadata_schema or "public"
    row = SQL.run(
        con, "maintenance/select_postgres_catalog_bytes.sql", {"metadata_schema": schema}
    ).fetchone()
    return int(row[0]) if row else 0


def _file_bytes(path: Path) -> int:
    """A database file with its write-ahead log (DuckDB ``.wal``, SQLite ``-wal``)."""
    total = 0
    for p in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + "-wal")):
        if p.exists():
            total += p.stat().st_size
    return total


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} MB"


def summary(result: MaintenanceResult) -> str:
    """One line for logs."""
    b, a = result.before, result.after
    if result.backend == "file":
        return f"{result.target}: {_mb(b.catalog_bytes)} -> {_mb(a.catalog_bytes)} (CHECKPOINT)"
    return (
        f"{result.target}: data files {b.data_files} -> {a.data_files}"
        f" ({_mb(b.data_bytes)} -> {_mb(a.data_bytes)}), snapshots {b.snapshots} -> {a.snapshots}"
        f" ({result.snapshots_expired} expired), {result.files_removed} files removed,"
        f" catalog {_mb(b.catalog_bytes)} -> {_mb(a.catalog_bytes)}"
    )


def format_report(result: MaintenanceResult) -> str:
    """A small before/after table for the CLI."""
    b, a = result.before, result.after
    rows: list[tuple[str, str, str]] = [("", "before", "after")]
    label = "file bytes" if result.backend == "file" else "catalog bytes"
    rows.append((label, str(b.catalog_bytes), str(a.catalog_bytes)))
    if result.backend != "file":
        for name in ("data_files", "data_bytes", "delete_files", "delete_bytes", "snapshots"):
            rows.append((name.replace("_", " "), str(getattr(b, name)), str(getattr(a, name))))
        rows.append(
            (
                "oldest snapshot",
                _iso(b.oldest_snapshot_at),
                _iso(a.oldest_snapshot_at),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"warehouse maintenance: {result.target}"]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    if result.backend != "file":
        lines.append(
            f"expired {result.snapshots_expired} snapshot(s) older than"
            f" {_iso(result.expired_before)} ({result.retention_days} days);"
            f" removed {result.files_removed} file(s)"
        )
    lines.append(result.note)
    return "\n".join(lines)


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")
