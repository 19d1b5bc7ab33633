"""Test helpers that act on a real DuckLake catalog from outside DuckDB: move snapshots back in
time (as if they had been taken days ago), and count the Parquet files on disk.

Moving ``ducklake_snapshot.snapshot_time`` back is how a test gets "a snapshot 100 days old"
without waiting: DuckLake reads that column for time travel by timestamp and for
``ducklake_expire_snapshots(older_than => ...)``. Call it with no lake connection open.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from common.settings import Settings

# How the SQLite catalog stores snapshot_time (text, UTC): '2026-12-07 08:02:39.018956+00'.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def shift_snapshots(settings: Settings, up_to_version: int, by: timedelta) -> int:
    """Move every snapshot with id <= ``up_to_version`` back by ``by``; how many moved."""
    target = settings.warehouse_target
    if target.kind == "sqlite":
        assert target.path is not None
        db = sqlite3.connect(target.path)
        try:
            rows = db.execute(
                "select snapshot_id, snapshot_time from ducklake_snapshot where snapshot_id <= ?",
                [up_to_version],
            ).fetchall()
            for sid, text in rows:
                when = datetime.strptime(text.removesuffix("+00"), _SQLITE_TIME) - by
                db.execute(
                    "update ducklake_snapshot set snapshot_time = ? where snapshot_id = ?",
                    [when.strftime(_SQLITE_TIME) + "+00", sid],
                )
            db.commit()
            return len(rows)
        finally:
            db.close()
    if target.kind == "postgres":
        import psycopg
        from psycopg import sql

        schema = target.metadata_schema or "public"
        with psycopg.connect(target.pg_dsn(), autocommit=True) as conn:
            cur = conn.execute(
                sql.SQL(
                    "update {}.ducklake_snapshot set snapshot_time = snapshot_time - %s"
                    " where snapshot_id <= %s"
                ).format(sql.Identifier(schema)),
                [by, up_to_version],
            )
            return cur.rowcount
    raise ValueError(f"{target.kind}: not a lake")


def parquet_files(settings: Settings) -> list[Path]:
    """The Parquet files under the lake's (local) data path."""
    return sorted(Path(settings.lake_data_path).rglob("*.parquet"))
