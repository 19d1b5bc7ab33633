"""The staging layer: views over the landing and quarantine Parquet files, as read.

Nothing is stored (0006 dropped the staging tables): ``staging.landing_{feed}`` and
``staging.quarantine`` are ``read_parquet`` views, (re)created by each load run from settings
because view DDL cannot take bound parameters and the data directory is a setting.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from common.catalogue import FEEDS
from common.settings import Settings
from ingestion.schema import QUARANTINE_SCHEMA, landing_schema
from warehouse import SQL
from warehouse.db import is_retryable

log = logging.getLogger(__name__)


def refresh_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Create or replace the staging views for the configured home (autocommit, one by one).

    DuckDB binds a view on creation (lists the glob, reads the first file's schema); if that
    fails (say the first file is unreadable: it is in dq.quarantine already), the old view
    stays and the run goes on: the views are a way to look at landing, not part of the load.
    """
    views: list[tuple[str, str | None, Path, str]] = [
        ("staging/create_landing_view.sql", feed, settings.landing_dir / feed, f"landing_{feed}")
        for feed in FEEDS
    ]
    views.append(
        ("staging/create_quarantine_view.sql", None, settings.quarantine_dir, "quarantine")
    )
    for sql, feed, directory, name in views:
        try:
            source = _source(settings, directory, name, feed)
            SQL.run(con, sql, feed=feed, path=source)
        except (duckdb.Error, OSError) as exc:
            if settings.warehouse_target.is_lake and is_retryable(exc):
                raise  # a lake commit lost a race: the caller redoes the views (db.retrying)
            log.warning("staging.%s not refreshed: %s", name, exc)


def _source(settings: Settings, directory: Path, name: str, feed: str | None) -> str:
    """The partitioned glob, or (no file yet) an empty Parquet file with the same columns:
    read_parquet fails on a glob that matches nothing, and a view must stay queryable."""
    if any(directory.glob("*=*/*.parquet")):
        return str(directory / "*=*" / "*.parquet")
    empty = settings.warehouse_dir / "staging" / f"{name}.empty.parquet"
    if not empty.exists():
        empty.parent.mkdir(parents=True, exist_ok=True)
        schema: pa.Schema = landing_schema(feed) if feed else QUARANTINE_SCHEMA
        pq.write_table(schema.empty_table(), empty)
    return str(empty)
