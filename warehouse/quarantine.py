"""dq.quarantine: records ingest set aside (quarantine Parquet files) and landing or quarantine
files the load could not read."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from common.settings import Settings
from ingestion.schema import QUARANTINE_SCHEMA
from warehouse import SQL, db
from warehouse.ledger import (
    BatchFile,
    file_identity,
    known_checksums,
    record_loaded,
    remember_paths,
    set_aside_unreadable,
)

PAYLOAD_EXCERPT_BYTES = 512

# The rows dq.quarantine receives (the Parquet file's payload becomes excerpt, size, digest).
DQ_QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("received_date", pa.date32()),
        pa.field("topic", pa.string()),
        pa.field("feed", pa.string()),
        pa.field("site_id", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("reading_index", pa.int32()),
        pa.field("payload_excerpt", pa.string()),
        pa.field("payload_bytes", pa.int64()),
        pa.field("payload_sha256", pa.string()),
        pa.field("source_file", pa.string()),
    ]
)


def _insert(con: duckdb.DuckDBPyConnection, table: pa.Table, params: dict[str, Any]) -> None:
    con.register("quarantine_rows", table)
    try:
        SQL.run(con, "dq/insert_quarantine.sql", params)
    finally:
        con.unregister("quarantine_rows")


def quarantine_unreadable(
    con: duckdb.DuckDBPyConnection, feed: str | None, bad: list[BatchFile], params: dict[str, Any]
) -> None:
    """One ``landing_file_unreadable`` row per file that could not be read (feed None: a
    quarantine file)."""
    now = datetime.now(UTC)
    rows = [
        {
            "received_at": now,
            "received_date": now.date(),
            "topic": "",
            "feed": feed,
            "site_id": None,
            "reason": "landing_file_unreadable",
            "detail": f.error or "",
            "reading_index": None,
            "payload_excerpt": "",
            "payload_bytes": f.size_bytes,
            "payload_sha256": f.sha256,
            "source_file": f.path,
        }
        for f in bad
    ]
    _insert(con, pa.Table.from_pylist(rows, schema=DQ_QUARANTINE_SCHEMA), params)


def _dq_rows(t: pa.Table, source_file: str) -> pa.Table:
    payloads = t["payload"].to_pylist()
    excerpt = [p[:PAYLOAD_EXCERPT_BYTES].decode("utf-8", errors="replace") for p in payloads]
    digest = [hashlib.sha256(p).hexdigest() for p in payloads]
    return pa.table(
        {
            "received_at": t["received_at"],
            "received_date": t["received_date"],
            "topic": t["topic"],
            "feed": t["feed"],
            "site_id": t["site_id"],
            "reason": t["reason"],
            "detail": t["detail"],
            "reading_index": t["reading_index"],
            "payload_excerpt": pa.array(excerpt, pa.string()),
            "payload_bytes": t["payload_bytes"],
            "payload_sha256": pa.array(digest, pa.string()),
            "source_file": pa.array([source_file] * t.num_rows, pa.string()),
        },
        schema=DQ_QUARANTINE_SCHEMA,
    )


def load_quarantine(settings: Settings, files: list[str], load_run_id: str) -> dict[str, int]:
    """Load quarantine Parquet files into dq.quarantine (ledgered, one transaction); returns
    the records loaded per feed (``unknown``: unreadable files)."""
    if not files:
        return {}
    infos: list[BatchFile] = []
    tables: list[pa.Table] = []
    for raw in files:
        ident = file_identity(raw)
        if ident is None:
            continue
        sha, size, mtime = ident
        try:
            t = pq.read_table(raw).select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
        except Exception as exc:
            infos.append(BatchFile(raw, sha, size, mtime, 0, f"{type(exc).__name__}: {exc}"))
            continue
        tables.append(_dq_rows(t, raw))
        infos.append(BatchFile(raw, sha, size, mtime, t.num_rows))
    params: dict[str, Any] = {"load_run_id": load_run_id, "loaded_at": datetime.now(UTC)}

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        # The claim makes an overlapping quarantine load conflict on a lake; the redo re-reads
        # the ledger (db.write). The counts come from the attempt that committed.
        SQL.run(con, "meta/update_quarantine_claim.sql", params)
        per_feed: dict[str, int] = {}
        known = known_checksums(con, [f.sha256 for f in infos])
        fresh_paths = {f.path for f in infos if f.sha256 not in known}
        fresh = [f for f in infos if f.path in fresh_paths]
        parts = [t for t in tables if t.num_rows and t["source_file"][0].as_py() in fresh_paths]
        if parts:
            con.register("quarantine_rows", pa.concat_tables(parts))
            try:
                per_feed = dict(SQL.run(con, "dq/count_quarantine_by_feed.sql").fetchall())
                SQL.run(con, "dq/insert_quarantine.sql", params)
            finally:
                con.unregister("quarantine_rows")
        # Also an unreadable copy of a file seen before (same bytes): it is set aside below.
        bad = [f for f in infos if f.error]
        if bad:
            quarantine_unreadable(con, None, bad, params)
            per_feed["unknown"] = per_feed.get("unknown", 0) + len(bad)
        for feed, n in per_feed.items():
            SQL.run(
                con,
                "dq/upsert_batch_counts.sql",
                {
                    **params,
                    "feed": feed,
                    "validation_run_id": None,
                    "files": 0,
                    "rows_read": 0,
                    "accepted_valid": 0,
                    "flagged": 0,
                    "partly_valid": 0,
                    "duplicates_dropped": 0,
                    "revisions": 0,
                    "quarantined": n,
                },
            )
        if fresh:
            record_loaded(con, fresh, "quarantine", None, params)
        remember_paths(con, infos, "quarantine", params)
        return per_feed

    per_feed = db.write(settings, work, what="load quarantine")
    unreadable = [f for f in infos if f.error]
    set_aside_unreadable(settings, unreadable, settings.quarantine_dir, "quarantine", params)
    return per_feed
