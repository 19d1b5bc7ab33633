"""One feed's batch before the load: landing files read, deduplicated, stored history around it,
and parked on disk between the validate and load tasks."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.arrow import group_codes
from common.settings import Settings
from ingestion.schema import landing_schema
from warehouse import SQL, db
from warehouse.ledger import BatchFile, file_identity

# One value per file: dictionary-encoded, 4 bytes a row instead of a copy of a ~100-byte path
# and a 64-byte digest per reading (DuckDB reads it as varchar).
_SOURCE_TYPE = pa.dictionary(pa.int32(), pa.string())


def _constant(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


def read_landing(feed: str, paths: list[str]) -> tuple[pa.Table, list[BatchFile]]:
    """Read landing files into one table with ``source_file`` and ``source_sha256`` columns."""
    schema = landing_schema(feed)
    tables: list[pa.Table] = []
    files: list[BatchFile] = []
    for raw in paths:
        ident = file_identity(raw)
        if ident is None:
            continue
        sha, size, mtime = ident
        try:
            t = pq.read_table(raw).select(schema.names).cast(schema)
        except Exception as exc:  # a broken file is recorded, never a crash of the batch
            files.append(BatchFile(raw, sha, size, mtime, 0, f"{type(exc).__name__}: {exc}"))
            continue
        t = t.append_column("source_file", _constant(raw, t.num_rows))
        t = t.append_column("source_sha256", _constant(sha, t.num_rows))
        tables.append(t)
        files.append(BatchFile(raw, sha, size, mtime, t.num_rows))
    if tables:
        table = pa.concat_tables(tables)
    else:
        extra = [pa.field("source_file", _SOURCE_TYPE), pa.field("source_sha256", _SOURCE_TYPE)]
        table = pa.schema([*schema, *extra]).empty_table()
    return table, files


def dedupe_batch(table: pa.Table, stats: dict[str, int] | None = None) -> pa.Table:
    """One row per natural key (latest received_at wins), in arrival order, + row_id.

    Vectorized (dictionary codes + one stable lexsort of the keys only): a re-delivery or
    revision inside the batch keeps the latest copy; on equal received_at the file read last
    (newest name) wins. The rows themselves are not reordered: without duplicates the batch
    is returned as is (no copy of a million rows' strings, ~0.3 s and 1x memory), else only
    the losing copies are filtered out. Arrival order is about time order, which keeps
    core's observed_at zone maps tight; the windowed checks sort their own key columns.

    ``stats["revisions"]`` (when given) receives the copies dropped here that were revisions
    (another content hash for the key), not re-deliveries: dq.batch_counts counts them apart.
    """
    if stats is not None:
        stats["revisions"] = 0  # also for an empty batch: a feed whose new files are all unreadable
    if table.num_rows == 0:
        return table.append_column("row_id", pa.array([], pa.int64()))
    codes = group_codes(table, ["site_id", "device_id", "lane"])
    ts = pc.cast(table["observed_at"], pa.int64()).to_numpy(zero_copy_only=False)
    rec = pc.cast(table["received_at"], pa.int64()).to_numpy(zero_copy_only=False)
    # Stable: equal (series, time, received_at) stay in read order, so the last one wins.
    order = np.lexsort((rec, ts, codes))
    c, t = codes[order], ts[order]
    loser = (c[:-1] == c[1:]) & (t[:-1] == t[1:])
    if loser.any():
        if stats is not None:
            # Only the keys with several copies: distinct (key, hash) beyond one per key.
            rows = np.unique(np.concatenate([order[:-1][loser], order[1:][loser]]))
            hashes = table["content_hash"].take(pa.array(rows)).to_pylist()
            keys = list(zip(codes[rows].tolist(), ts[rows].tolist(), strict=True))
            pairs = set(zip(keys, hashes, strict=True))
            stats["revisions"] = len(pairs) - len(set(keys))
        keep = np.ones(table.num_rows, dtype=bool)
        keep[order[:-1][loser]] = False
        table = table.filter(pa.array(keep))
    return table.append_column("row_id", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def read_history(
    settings: Settings, feed: str, batch: pa.Table, lookback_s: int
) -> pa.Table | None:
    """Stored readings from ``lookback_s`` before the batch's first observation to its last."""
    if batch.num_rows == 0 or lookback_s <= 0 or not db.exists(settings):
        return None
    mm = pc.min_max(batch["observed_at"]).as_py()
    # Clamped: a reading near year 1 (landed before the contract's valid_from bound) must not
    # overflow the date range and stop every load.
    floor = datetime.min.replace(tzinfo=UTC) + timedelta(seconds=lookback_s)
    since = max(mm["min"], floor) - timedelta(seconds=lookback_s)
    with db.reader(settings) as con:
        try:
            return SQL.relation(
                con,
                "core/select_history.sql",
                {"since": since, "until": mm["max"]},
                feed=feed,
            ).to_arrow_table()
        except duckdb.CatalogException:
            return None


def batch_checks(batch: pa.Table, expected_sites: list[str]) -> dict[str, Any]:
    """Batch-level completeness and freshness per site: readings and last observed_at."""
    if batch.num_rows == 0:
        return {"per_site": {}, "silent_sites": expected_sites}
    grouped = batch.group_by("site_id").aggregate(
        [("observed_at", "max"), ("observed_at", "count")]
    )
    per_site = {
        r["site_id"]: {
            "readings": r["observed_at_count"],
            "last_observed_at": str(r["observed_at_max"]),
        }
        # By site: group_by's order follows its threads, and the stored JSON should not vary.
        for r in sorted(grouped.to_pylist(), key=lambda r: str(r["site_id"]))
    }
    return {"per_site": per_site, "silent_sites": [s for s in expected_sites if s not in per_site]}


# ---------------------------------------------------------------- parked between tasks


class ValidationRecord(TypedDict):
    """What the load stores of a batch's validation (plain JSON values: it is parked on disk)."""

    validation_run_id: str
    suite_name: str
    suite_version: str
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]]
    batch_checks: dict[str, Any]
    started_at: str
    ended_at: str
    files: list[dict[str, Any]]
    rows_read: int
    # copies of a key superseded by another content hash inside the batch (dropped by dedupe)
    in_batch_revisions: int
    docs_id: Any


class ParkedFiles(TypedDict):
    """Where a validated batch waits for the load task (XCom carries only these paths)."""

    batch: str
    flags: str
    meta: str


def safe_id(raw: str) -> str:
    """Airflow run ids contain ':' and '+'; keep ids usable as directory names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def work_dir(settings: Settings, load_run_id: str) -> Path:
    """``{home}/work/ingest/{load_run_id}``: the run's parked batches (removed at its end)."""
    return settings.home / "work" / "ingest" / safe_id(load_run_id)


def park(
    directory: Path, feed: str, batch: pa.Table, flags: pa.Table, meta: ValidationRecord
) -> ParkedFiles:
    """Write a validated batch, its flags and its validation record for the load task."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ParkedFiles(
        batch=str(directory / f"{feed}.batch.parquet"),
        flags=str(directory / f"{feed}.flags.parquet"),
        meta=str(directory / f"{feed}.validation.json"),
    )
    # Uncompressed: these files live for seconds and are read once by the loader.
    pq.write_table(batch, files["batch"], compression="none")
    pq.write_table(flags, files["flags"], compression="none")
    Path(files["meta"]).write_text(json.dumps(meta, default=str), encoding="utf-8")
    return files


def unpark(files: ParkedFiles) -> tuple[pa.Table, pa.Table, ValidationRecord]:
    """The batch, flags and validation record that :func:`park` wrote."""
    record: ValidationRecord = json.loads(Path(files["meta"]).read_text(encoding="utf-8"))
    return pq.read_table(files["batch"]), pq.read_table(files["flags"]), record


def discard(files: ParkedFiles) -> None:
    """Remove one parked batch (loaded, or found loaded before)."""
    for path in (files["batch"], files["flags"], files["meta"]):
        Path(path).unlink(missing_ok=True)


# A run's parked batches live from its validate to its load task: minutes, at worst the task
# timeouts and retries of the ingest DAG (about 1.5 h). Older ones belong to a run that was
# killed or failed before its last step, and nothing else would remove them.
STALE_WORK_AGE_S = 6 * 3600


def remove_stale_work_dirs(settings: Settings, max_age_s: float = STALE_WORK_AGE_S) -> list[Path]:
    """Remove the work directories of other runs untouched for ``max_age_s`` (a killed or
    failed run's parked batches); the ones removed. A live run's directory is never that old."""
    root = settings.home / "work" / "ingest"
    if not root.is_dir():
        return []
    cutoff = datetime.now(UTC).timestamp() - max_age_s
    removed: list[Path] = []
    for d in root.iterdir():
        try:
            newest = max((p.stat().st_mtime for p in d.rglob("*")), default=d.stat().st_mtime)
        except FileNotFoundError:  # removed meanwhile
            continue
        if d.is_dir() and newest < cutoff:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def remove_work_dir(settings: Settings, load_run_id: str) -> None:
    """The run's work directory, whatever is left in it (the run's last step)."""
    shutil.rmtree(work_dir(settings, load_run_id), ignore_errors=True)
