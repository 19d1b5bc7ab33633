"""Load one validated feed batch into core and dq in one transaction: the merge (new, revision,
duplicate, stale), the core rows with their validity, the validation run, the batch counts and
the ledger."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any, TypedDict

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.settings import Settings
from warehouse import SQL, db
from warehouse.batch import ValidationRecord
from warehouse.dims import load_dim_site
from warehouse.ledger import (
    BatchFile,
    known_checksums,
    record_loaded,
    remember_paths,
    set_aside_unreadable,
)
from warehouse.quarantine import quarantine_unreadable
from warehouse.seq_gaps import record_seq_anomalies

log = logging.getLogger(__name__)

# The columns identifying a feed's series in core (with observed_at: the natural key).
_SERIES_KEY = {"traffic": ["site_id", "device_id", "lane"]}
_DEFAULT_SERIES_KEY = ["site_id", "device_id"]


class MergeCounts(TypedDict):
    new: int
    revision: int
    duplicate: int
    stale: int
    valid: int
    flagged: int
    partly_valid: int


class LoadResult(TypedDict):
    counts: MergeCounts
    # local days that got new or revised readings (empty when nothing was loaded)
    changed_dates: list[date]
    loaded: bool


class InjectedFailure(RuntimeError):
    """Raised by the test hook to interrupt a load between its inserts and its commit."""


def no_counts() -> MergeCounts:
    return MergeCounts(new=0, revision=0, duplicate=0, stale=0, valid=0, flagged=0, partly_valid=0)


def load_feed_batch(
    settings: Settings,
    feed: str,
    load_run_id: str,
    batch: pa.Table,
    flags: pa.Table,
    record: ValidationRecord,
    *,
    fail_before_commit: bool = False,
) -> LoadResult:
    """Load one validated feed batch in ONE transaction: core rows, flags, dq rows, ledger.

    Files whose checksum is already in the ledger are dropped first, so a rerun loads nothing
    twice. On a lake the transaction also updates the feed's claim row: a load of the same feed
    committed meanwhile makes it conflict, and it is redone whole on a fresh connection
    (``db.write``), re-reading the ledger. Everything it returns comes from the attempt that
    committed; files move only after the commit. ``fail_before_commit`` exists for the
    interruption test.
    """
    files = [BatchFile(**f) for f in record["files"]]
    params: dict[str, Any] = {
        "feed": feed,
        "load_run_id": load_run_id,
        "validation_run_id": record["validation_run_id"],
        "loaded_at": datetime.now(UTC),
    }

    def work(con: duckdb.DuckDBPyConnection) -> tuple[LoadResult, list[BatchFile]]:
        SQL.run(con, "meta/update_load_claim.sql", params, feed=feed)
        load_dim_site(con, settings)
        known = known_checksums(con, [f.sha256 for f in files])
        fresh = [f for f in files if f.sha256 not in known]
        # Every unreadable file, also one with the bytes of a file quarantined before (two
        # zero-byte files share a checksum): left in landing, it would break the staging views
        # and never be reported.
        bad_files = [f for f in files if f.error]
        if not fresh:
            if bad_files:
                quarantine_unreadable(con, feed, bad_files, params)
            # Remember the paths, so copies of loaded files are not rediscovered forever.
            remember_paths(con, files, "landing", params)
            log.info("%s: every file of the batch was loaded before; nothing to do", feed)
            return LoadResult(counts=no_counts(), changed_dates=[], loaded=False), bad_files
        rows, row_flags = batch, flags  # an attempt never changes the caller's batch
        if known:
            keep = pc.invert(pc.is_in(rows["source_sha256"], pa.array(sorted(known))))
            rows = rows.filter(keep)
            row_flags = row_flags.filter(
                pc.is_in(row_flags["row_id"], rows["row_id"].combine_chunks())
            )
        counts = merge_batch(con, feed, rows, row_flags, params)
        record_seq_anomalies(con, feed, rows, params)
        # Copies of files already loaded are gone from the batch: bounded by what is left.
        rows_read = sum(f.rows for f in fresh)
        in_batch_revisions = min(
            int(record.get("in_batch_revisions", 0)), rows_read - rows.num_rows
        )
        changed = [r[0] for r in SQL.run(con, "core/select_changed_dates.sql").fetchall()]
        if bad_files:
            quarantine_unreadable(con, feed, bad_files, params)
        record_validation_run(con, record, fresh, params)
        SQL.run(
            con,
            "dq/upsert_batch_counts.sql",
            {
                **params,
                "files": len(fresh),
                "rows_read": rows_read,
                "accepted_valid": counts["valid"],
                "flagged": counts["flagged"],
                "partly_valid": counts["partly_valid"],
                "duplicates_dropped": rows_read
                - rows.num_rows
                - in_batch_revisions
                + counts["duplicate"]
                + counts["stale"],
                # superseded inside the batch (dropped by dedupe_batch) and in core
                "revisions": counts["revision"] + in_batch_revisions,
                "quarantined": len(bad_files),
            },
        )
        SQL.run(con, "meta/insert_load_batch.sql", {**params, "changed_dates": changed})
        record_loaded(con, fresh, "landing", feed, params)
        remember_paths(con, files, "landing", params)
        if fail_before_commit:
            raise InjectedFailure("injected failure after the inserts, before commit")
        return LoadResult(counts=counts, changed_dates=changed, loaded=True), bad_files

    result, bad_files = db.write(settings, work, what=f"load {feed}")
    set_aside_unreadable(settings, bad_files, settings.landing_dir, "landing", params)
    return result


def merge_batch(
    con: duckdb.DuckDBPyConnection,
    feed: str,
    batch: pa.Table,
    flags: pa.Table,
    params: dict[str, Any],
) -> MergeCounts:
    """Merge a deduplicated batch (with row_id) and its GX flags into core and
    dq.flagged_readings; runs inside the caller's transaction. Returns readings per action."""
    if batch.num_rows == 0:
        return no_counts()
    mm = pc.min_max(batch["observed_at"]).as_py()
    params = {
        **params,
        "min_obs": mm["min"],
        "max_obs": mm["max"],
        "series_key": _SERIES_KEY.get(feed, _DEFAULT_SERIES_KEY),
    }
    con.register("batch_rows", batch)
    con.register("batch_flags", flags)
    try:
        SQL.run(con, "core/merge_obs.sql", params, feed=feed)
        failed = SQL.relation(con, "core/select_failed_readings.sql").to_arrow_table()
        dropped = SQL.relation(con, "core/select_unstored_readings.sql").to_arrow_table()["row_id"]
    finally:
        con.unregister("batch_rows")
        con.unregister("batch_flags")
    con.register("core_rows", _core_rows(feed, batch, failed, dropped))
    try:
        # Filtering costs ~0.1 s per million rows; only re-deliveries need it.
        sql = "core/insert_obs_stored.sql" if len(dropped) else "core/insert_obs.sql"
        SQL.run(con, sql, params, feed=feed)
    finally:
        con.unregister("core_rows")
    # (readings, of which passed every check) per action
    planned = {a: (n, v) for a, n, v in SQL.run(con, "core/count_merge_actions.sql").fetchall()}
    new, new_valid = planned.get("new", (0, 0))
    revision, revision_valid = planned.get("revision", (0, 0))
    # Stored readings valid as a whole with some value invalidated: failing, still is_valid,
    # not dropped as a duplicate or stale copy.
    partly = failed.filter(failed["is_valid"])["row_id"]
    if len(dropped) and len(partly):
        partly = partly.filter(pc.invert(pc.is_in(partly, dropped.combine_chunks())))
    return MergeCounts(
        new=new,
        revision=revision,
        duplicate=planned.get("duplicate", (0, 0))[0],
        stale=planned.get("stale", (0, 0))[0],
        valid=new_valid + revision_valid,
        flagged=new + revision - new_valid - revision_valid,
        partly_valid=len(partly),
    )


def _core_rows(feed: str, batch: pa.Table, failed: pa.Table, dropped: pa.ChunkedArray) -> pa.Table:
    """The batch plus failed_expectations, is_valid and invalid_columns (and is_stored when some
    readings are duplicates or stale), without copying the batch.

    ``failed`` has one row per failing reading (row_id, failed_expectations, is_valid,
    invalid_columns); ``dropped`` the row ids of duplicates and stale readings. Row ids are
    looked up, not used as positions (readings of files already in the ledger were filtered
    out of the batch). The text and list columns are dictionary-encoded over ``failed`` (code
    0 = no failure; DuckDB stores them as plain varchar / varchar[]): no per-row copy.
    invalid_columns is null where no value was invalidated (an empty list per reading cost
    ~35 ms per million rows to store, a null ~15).
    """
    n = batch.num_rows
    codes = np.zeros(n, dtype=np.int32)
    if failed.num_rows:
        codes[_positions(batch["row_id"], failed["row_id"])] = np.arange(
            1, failed.num_rows + 1, dtype=np.int32
        )
    names = pa.concat_arrays(
        [
            pa.array([""], pa.string()),
            failed["failed_expectations"].combine_chunks().cast(pa.string()),
        ]
    )
    valid = pa.concat_arrays(
        [pa.array([True]), failed["is_valid"].combine_chunks().cast(pa.bool_())]
    )
    invalid = pa.concat_arrays(
        [
            pa.nulls(1, pa.list_(pa.string())),
            failed["invalid_columns"].combine_chunks().cast(pa.list_(pa.string())),
        ]
    )
    if feed != "traffic":
        batch = batch.drop_columns([c for c in ("lane", "direction") if c in batch.column_names])
    take = pa.array(codes)
    out = (
        batch.append_column("failed_expectations", pa.DictionaryArray.from_arrays(take, names))
        .append_column("is_valid", valid.take(take))
        .append_column(
            "invalid_columns",
            pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes == 0), invalid),
        )
    )
    if len(dropped):
        stored = np.ones(n, dtype=bool)
        stored[_positions(batch["row_id"], dropped)] = False
        out = out.append_column("is_stored", pa.array(stored))
    return out


def _positions(row_id: pa.ChunkedArray, ids: pa.ChunkedArray) -> np.ndarray:
    """Positions of ``ids`` in the batch's ``row_id`` column (ascending: dedupe numbers the rows
    in order and filtering keeps it), by binary search instead of a hash of a million ids."""
    haystack = row_id.to_numpy()
    needles = ids.to_numpy()
    pos: np.ndarray = np.searchsorted(haystack, needles)
    if not (pos < len(haystack)).all() or not np.array_equal(haystack[pos], needles):
        raise ValueError("row ids of the plan are not in the batch")
    return pos


def record_validation_run(
    con: duckdb.DuckDBPyConnection,
    record: ValidationRecord,
    files: list[BatchFile],
    params: dict[str, Any],
) -> None:
    """One dq.validation_runs row for the batch (the files actually loaded)."""
    stats = record["statistics"]
    SQL.run(
        con,
        "dq/insert_validation_run.sql",
        {
            **params,
            "suite_name": record["suite_name"],
            "suite_version": record.get("suite_version"),
            "files": [f.path for f in files],
            "rows": sum(f.rows for f in files),
            "success": record["success"],
            "evaluated": stats.get("evaluated_expectations", 0),
            "successful": stats.get("successful_expectations", 0),
            "unsuccessful": stats.get("unsuccessful_expectations", 0),
            "success_percent": stats.get("success_percent"),
            "statistics_json": json.dumps(stats),
            "results_json": json.dumps(record["results"], default=str),
            "batch_checks_json": json.dumps(record["batch_checks"], default=str),
            "started_at": datetime.fromisoformat(record["started_at"]),
            "ended_at": datetime.fromisoformat(record["ended_at"]),
        },
    )
