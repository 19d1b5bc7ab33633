"""The ingest pipeline's steps, importable without Airflow (the DAG only wires them).

discover -> validate (per feed, GX) -> load (per feed, one transaction) -> load quarantine ->
record dq (completeness) -> mark dirty days -> build Data Docs. Every step is idempotent: the
ledger keeps a file from loading twice, and follow-up steps work off ``meta.load_batches`` rows
still marked as pending, so a step that failed is simply redone by the next run.
Between steps only small things travel (paths, ids, counts); the validated batch waits in a
work directory under ``{home}/work/ingest/{load_run_id}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.catalogue import FEEDS, load_catalogue
from common.settings import Settings
from ingestion.landing import set_aside, unreadable_root
from ingestion.schema import QUARANTINE_SCHEMA, landing_schema
from warehouse import SQL, db, staging
from warehouse.dims import load_dim_site
from warehouse.seq_gaps import record_seq_anomalies

log = logging.getLogger(__name__)

# A batch larger than this waits for the next run (bounds memory: see docs/warehouse.md).
MAX_BATCH_ROWS = 2_000_000
PAYLOAD_EXCERPT_BYTES = 512


def _now() -> datetime:
    return datetime.now(UTC)


def new_load_run_id(prefix: str = "load") -> str:
    return f"{prefix}-{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def safe_id(raw: str) -> str:
    """Airflow run ids contain ':' and '+'; keep ids usable as directory names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def work_dir(settings: Settings, load_run_id: str) -> Path:
    return settings.home / "work" / "ingest" / safe_id(load_run_id)


# ---------------------------------------------------------------- discover


def _ledger_index(settings: Settings) -> set[tuple[str, int, int]]:
    if not settings.warehouse_path.exists():
        return set()
    with db.reader(settings) as con:
        try:
            rows = SQL.run(con, "meta/loaded_files.sql").fetchall()
        except duckdb.CatalogException:  # not migrated yet
            return set()
    return {(p, size, mtime) for p, size, mtime in rows}


def discover_new_files(
    settings: Settings, max_batch_rows: int = MAX_BATCH_ROWS
) -> dict[str, list[str]]:
    """New landing files per feed and new quarantine files (key ``quarantine``), oldest first.

    A file is known when the ledger (``meta.load_ledger`` or ``meta.ledger_paths``) has its
    path with the same size and mtime. A file with a known checksum under another name (or
    touched) is discovered once, skipped at load time, and its path recorded in
    ``meta.ledger_paths`` so it is not discovered again. Per feed, files are taken until
    ``max_batch_rows`` (from Parquet footers); the rest wait for the next run.
    """
    known = _ledger_index(settings)
    out: dict[str, list[str]] = {}
    for feed in FEEDS:
        chosen: list[str] = []
        total = 0
        # Files ingest set aside as unreadable come too: the load records each in dq.quarantine.
        aside = unreadable_root(settings.landing_dir) / feed
        for p in sorted(
            [
                *(settings.landing_dir / feed).glob("local_date=*/*.parquet"),
                *aside.glob("local_date=*/*.parquet"),
            ],
            key=lambda x: x.name,
        ):
            st = p.stat()
            if (str(p), st.st_size, st.st_mtime_ns) in known:
                continue
            try:
                n = pq.ParquetFile(p).metadata.num_rows
            except Exception:  # unreadable: let the loader quarantine it with a reason
                n = 0
            if chosen and total + n > max_batch_rows:
                break
            chosen.append(str(p))
            total += n
        out[feed] = chosen
    q_files = [
        *settings.quarantine_dir.glob("received_date=*/*.parquet"),
        *unreadable_root(settings.quarantine_dir).glob("received_date=*/*.parquet"),
    ]
    out["quarantine"] = [
        str(p)
        for p in sorted(q_files)
        if (str(p), p.stat().st_size, p.stat().st_mtime_ns) not in known
    ]
    return out


# ---------------------------------------------------------------- read + validate


@dataclass
class BatchFile:
    path: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    rows: int
    error: str | None = None


def read_landing(feed: str, paths: list[str]) -> tuple[pa.Table, list[BatchFile]]:
    """Read landing files into one table with ``source_file`` and ``source_sha256`` columns."""
    schema = landing_schema(feed)
    tables: list[pa.Table] = []
    files: list[BatchFile] = []
    for raw in paths:
        p = Path(raw)
        try:
            st = p.stat()
            sha = sha256_file(p)
        except FileNotFoundError:  # set aside by ingest since discovery: found there next run
            log.warning("%s vanished since discovery; skipped", raw)
            continue
        try:
            t = pq.read_table(p).select(schema.names).cast(schema)
        except Exception as exc:  # a broken file is recorded, never a crash of the batch
            files.append(
                BatchFile(raw, sha, st.st_size, st.st_mtime_ns, 0, f"{type(exc).__name__}: {exc}")
            )
            continue
        t = t.append_column("source_file", _constant(raw, t.num_rows))
        t = t.append_column("source_sha256", _constant(sha, t.num_rows))
        tables.append(t)
        files.append(BatchFile(raw, sha, st.st_size, st.st_mtime_ns, t.num_rows))
    if tables:
        table = pa.concat_tables(tables)
    else:
        extra = [pa.field("source_file", _SOURCE_TYPE), pa.field("source_sha256", _SOURCE_TYPE)]
        table = pa.schema([*schema, *extra]).empty_table()
    return table, files


# One value per file: dictionary-encoded, 4 bytes a row instead of a copy of a ~100-byte path
# and a 64-byte digest per reading (DuckDB reads it as varchar).
_SOURCE_TYPE = pa.dictionary(pa.int32(), pa.string())


def _constant(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


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
    from expectations.derive import _group_codes

    if table.num_rows == 0:
        return table.append_column("row_id", pa.array([], pa.int64()))
    codes = _group_codes(table, ["site_id", "device_id", "lane"])
    ts = pc.cast(table["observed_at"], pa.int64()).to_numpy(zero_copy_only=False)
    rec = pc.cast(table["received_at"], pa.int64()).to_numpy(zero_copy_only=False)
    # Stable: equal (series, time, received_at) stay in read order, so the last one wins.
    order = np.lexsort((rec, ts, codes))
    c, t = codes[order], ts[order]
    loser = (c[:-1] == c[1:]) & (t[:-1] == t[1:])
    if stats is not None:
        stats["revisions"] = 0
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
    if batch.num_rows == 0 or lookback_s <= 0 or not settings.warehouse_path.exists():
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
                "core/history.sql",
                {"since": since, "until": mm["max"]},
                feed=feed,
            ).to_arrow_table()
        except duckdb.CatalogException:
            return None


def validate_batch(
    settings: Settings,
    feed: str,
    batch: pa.Table,
    validation_run_id: str,
    run_time: datetime | None = None,
) -> Any:
    """GX-validate a deduplicated batch (with row_id); returns an expectations.validate.Validation."""
    from expectations.derive import history_lookback
    from expectations.reference import feed_rules
    from expectations.validate import validate_table

    run_time = run_time or _now()
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    local_day = run_time.astimezone(_tz(settings)).date()
    rules = feed_rules(settings.reference_dir, feed, local_day)
    periods = [s.period_s for s in catalogue.by_feed(feed)] or [60]
    history = read_history(settings, feed, batch, history_lookback(rules, max(periods)))
    return validate_table(
        feed,
        batch,
        rules=rules,
        catalogue=catalogue,
        run_time=run_time,
        validation_run_id=validation_run_id,
        future_tolerance_s=settings.future_tolerance_s,
        history=history,
    )


def _tz(settings: Settings) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.timezone)


def validate_feed_batch(
    settings: Settings, feed: str, files: list[str], load_run_id: str
) -> dict[str, Any]:
    """Read, deduplicate and validate one feed's new files; park the result for the loader.

    Returns a small summary (XCom-sized): ids, counts, the work files, flagged per expectation.
    """
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}")
    validation_run_id = f"{safe_id(load_run_id)}-{feed}-{uuid.uuid4().hex[:6]}"
    summary: dict[str, Any] = {
        "feed": feed,
        "load_run_id": load_run_id,
        "validation_run_id": validation_run_id,
        "files": list(files),
        "rows_read": 0,
        "rows": 0,
        "success": True,
        "flagged_by_expectation": {},
        "work": None,
    }
    if not files:
        return summary
    raw, file_info = read_landing(feed, files)
    dedupe_stats: dict[str, int] = {}
    batch = dedupe_batch(raw, dedupe_stats)
    v = validate_batch(settings, feed, batch, validation_run_id)
    wd = work_dir(settings, load_run_id)
    wd.mkdir(parents=True, exist_ok=True)
    batch_path = wd / f"{feed}.batch.parquet"
    flags_path = wd / f"{feed}.flags.parquet"
    # Uncompressed: this file lives for seconds and is read once by the loader.
    pq.write_table(batch, batch_path, compression="none")
    pq.write_table(v.flagged, flags_path, compression="none")
    docs_id = store_docs_result(settings, v)
    meta = {
        "validation_run_id": validation_run_id,
        "suite_name": v.suite_name,
        "suite_version": v.suite_version,
        "success": v.success,
        "statistics": v.statistics,
        "results": v.results,
        "batch_checks": batch_checks(batch, v.expected_sites),
        "started_at": v.started_at.isoformat(),
        "ended_at": v.ended_at.isoformat(),
        "files": [f.__dict__ for f in file_info],
        "rows_read": raw.num_rows,
        "in_batch_revisions": dedupe_stats["revisions"],
        "docs_id": docs_id,
    }
    meta_path = wd / f"{feed}.validation.json"
    meta_path.write_text(json.dumps(meta, default=str), encoding="utf-8")
    summary.update(
        rows_read=raw.num_rows,
        rows=batch.num_rows,
        success=v.success,
        flagged_by_expectation=v.flagged_by_expectation,
        work={"batch": str(batch_path), "flags": str(flags_path), "meta": str(meta_path)},
    )
    return summary


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
        for r in grouped.to_pylist()
    }
    return {"per_site": per_site, "silent_sites": [s for s in expected_sites if s not in per_site]}


# ---------------------------------------------------------------- load


def _known_checksums(con: duckdb.DuckDBPyConnection, shas: list[str]) -> set[str]:
    if not shas:
        return set()
    rows = SQL.run(con, "meta/known_checksums.sql", {"checksums": shas}).fetchall()
    return {r[0] for r in rows}


def _register_ledger(
    con: duckdb.DuckDBPyConnection, files: list[BatchFile], kind: str, feed: str | None
) -> None:
    con.register(
        "ledger_rows",
        pa.table(
            {
                "sha256": pa.array([f.sha256 for f in files], pa.string()),
                "path": pa.array([f.path for f in files], pa.string()),
                "kind": pa.array([kind] * len(files), pa.string()),
                "feed": pa.array([feed] * len(files), pa.string()),
                "size_bytes": pa.array([f.size_bytes for f in files], pa.int64()),
                "mtime_ns": pa.array([f.mtime_ns for f in files], pa.int64()),
                "rows": pa.array([f.rows for f in files], pa.int64()),
            }
        ),
    )


def _remember_paths(
    con: duckdb.DuckDBPyConnection, files: list[BatchFile], kind: str, params: dict[str, Any]
) -> None:
    """Record every path of the batch (loaded or skipped as a known checksum) with its size and
    mtime in ``meta.ledger_paths``; discovery skips a path that still matches."""
    if not files:
        return
    _register_ledger(con, files, kind, None)
    SQL.run(con, "meta/insert_ledger_paths.sql", params)


class InjectedFailure(RuntimeError):
    """Raised by the test hook to interrupt a load between its inserts and its commit."""


def load_feed_batch(
    settings: Settings, summary: dict[str, Any], *, fail_before_commit: bool = False
) -> dict[str, Any]:
    """Load one validated feed batch in ONE transaction: core rows, flags, dq rows, ledger.

    Files whose checksum is already in the ledger are dropped first, so a rerun loads nothing
    twice. ``fail_before_commit`` exists for the interruption test.
    """
    feed = summary["feed"]
    out = {
        "feed": feed,
        "load_run_id": summary["load_run_id"],
        "loaded": False,
        "new": 0,
        "revision": 0,
        "duplicate": 0,
        "stale": 0,
        "valid": 0,
        "flagged": 0,
        "partly_valid": 0,
        "changed_dates": [],
    }
    if not summary.get("work"):
        return out
    work = summary["work"]
    meta = json.loads(Path(work["meta"]).read_text(encoding="utf-8"))
    files = [BatchFile(**f) for f in meta["files"]]
    batch = pq.read_table(work["batch"])
    flags = _with_scope(pq.read_table(work["flags"]))
    loaded_at = _now()
    params_common = {
        "feed": feed,
        "load_run_id": summary["load_run_id"],
        "validation_run_id": meta["validation_run_id"],
        "loaded_at": loaded_at,
    }
    with db.writer(settings) as con:
        con.execute("begin transaction")
        try:
            load_dim_site(con, settings)
            known = _known_checksums(con, [f.sha256 for f in files])
            fresh = [f for f in files if f.sha256 not in known]
            if not fresh:
                # Remember the paths, so copies of loaded files are not rediscovered forever.
                _remember_paths(con, files, "landing", params_common)
                con.execute("commit")
                log.info("%s: every file of the batch was loaded before; nothing to do", feed)
                _cleanup(work)
                return out
            if known:
                keep = pc.invert(pc.is_in(batch["source_sha256"], pa.array(sorted(known))))
                batch = batch.filter(keep)
                flags = flags.filter(pc.is_in(flags["row_id"], batch["row_id"].combine_chunks()))
            counts = _merge(con, feed, batch, flags, params_common)
            record_seq_anomalies(con, feed, batch, params_common)
            # Copies of files already loaded are gone from the batch: bounded by what is left.
            in_batch_revisions = min(
                int(meta.get("in_batch_revisions", 0)),
                sum(f.rows for f in fresh) - batch.num_rows,
            )
            changed = [r[0] for r in SQL.run(con, "core/changed_dates.sql").fetchall()]
            bad_files = [f for f in fresh if f.error]
            if bad_files:
                _quarantine_bad_files(con, feed, bad_files, params_common)
            _record_validation_run(con, feed, meta, fresh, params_common)
            SQL.run(
                con,
                "dq/upsert_batch_counts.sql",
                {
                    **params_common,
                    "files": len(fresh),
                    "rows_read": sum(f.rows for f in fresh),
                    "accepted_valid": counts["valid"],
                    "flagged": counts["flagged"],
                    "partly_valid": counts["partly_valid"],
                    "duplicates_dropped": sum(f.rows for f in fresh)
                    - batch.num_rows
                    - in_batch_revisions
                    + counts["duplicate"]
                    + counts["stale"],
                    # superseded inside the batch (dropped by dedupe_batch) and in core
                    "revisions": counts["revision"] + in_batch_revisions,
                    "quarantined": len(bad_files),
                },
            )
            SQL.run(con, "meta/insert_load_batch.sql", {**params_common, "changed_dates": changed})
            _register_ledger(con, fresh, "landing", feed)
            SQL.run(con, "meta/insert_ledger.sql", params_common)
            _remember_paths(con, files, "landing", params_common)
            if fail_before_commit:
                raise InjectedFailure("injected failure after the inserts, before commit")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    _cleanup(work)
    _set_aside(settings, bad_files, settings.landing_dir, "landing", params_common)
    out.update(counts, loaded=True, changed_dates=[d.isoformat() for d in changed])
    return out


def _set_aside(
    settings: Settings, bad: list[BatchFile], root: Path, kind: str, params: dict[str, Any]
) -> None:
    """After the commit that quarantined them: unreadable files leave the folder that the
    staging views glob (one broken file would fail the whole view). Their new paths go to
    ``meta.ledger_paths`` so discovery does not bring them back."""
    moved: list[BatchFile] = []
    for f in bad:
        dest = set_aside(Path(f.path), root)
        if dest is not None:
            log.warning("unreadable file %s moved to %s", f.path, dest)
            moved.append(replace(f, path=str(dest)))
    if moved:
        with db.writer(settings) as con:
            _remember_paths(con, moved, kind, params)


def _merge(
    con: duckdb.DuckDBPyConnection,
    feed: str,
    batch: pa.Table,
    flags: pa.Table,
    params: dict[str, Any],
) -> dict[str, int]:
    counts = {"new": 0, "revision": 0, "duplicate": 0, "stale": 0, "valid": 0, "flagged": 0}
    counts["partly_valid"] = 0
    if batch.num_rows == 0:
        return counts
    mm = pc.min_max(batch["observed_at"]).as_py()
    params = {**params, "min_obs": mm["min"], "max_obs": mm["max"]}
    con.register("batch_rows", batch)
    con.register("batch_flags", flags)
    try:
        sql = "core/merge_obs_traffic.sql" if feed == "traffic" else "core/merge_obs.sql"
        SQL.run(con, sql, params, feed=feed)
        failed = SQL.relation(con, "core/merge_failed.sql").to_arrow_table()
        dropped = SQL.relation(con, "core/merge_dropped.sql").to_arrow_table()["row_id"]
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
    for action, readings, valid in SQL.run(con, "core/merge_counts.sql").fetchall():
        counts[action] = readings
        if action in ("new", "revision"):
            counts["valid"] += valid
            counts["flagged"] += readings - valid
    # Stored readings valid as a whole with some value invalidated: failing, still is_valid,
    # not dropped as a duplicate or stale copy.
    partly = failed.filter(failed["is_valid"])["row_id"]
    if len(dropped) and len(partly):
        partly = partly.filter(pc.invert(pc.is_in(partly, dropped.combine_chunks())))
    counts["partly_valid"] = len(partly)
    return counts


def _with_scope(flags: pa.Table) -> pa.Table:
    """Flags parked by a validation before per-value validity (no scope columns) keep the rule
    they were made under: each failure invalidates its reading."""
    if "scope" in flags.column_names:
        return flags
    from expectations.validate import FLAGGED_SCHEMA

    n = flags.num_rows
    return flags.append_column(
        FLAGGED_SCHEMA.field("scope"), pa.repeat(pa.scalar("reading"), n)
    ).append_column(
        FLAGGED_SCHEMA.field("invalidated_columns"),
        pa.repeat(pa.scalar([], pa.list_(pa.string())), n),
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
    pos = np.searchsorted(haystack, needles)
    if not (pos < len(haystack)).all() or not np.array_equal(haystack[pos], needles):
        raise ValueError("row ids of the plan are not in the batch")
    return pos


def _record_validation_run(
    con: duckdb.DuckDBPyConnection,
    feed: str,
    meta: dict[str, Any],
    files: list[BatchFile],
    params: dict[str, Any],
) -> None:
    stats = meta["statistics"]
    SQL.run(
        con,
        "dq/insert_validation_run.sql",
        {
            **params,
            "suite_name": meta["suite_name"],
            "suite_version": meta.get("suite_version"),
            "files": [f.path for f in files],
            "rows": sum(f.rows for f in files),
            "success": meta["success"],
            "evaluated": stats.get("evaluated_expectations", 0),
            "successful": stats.get("successful_expectations", 0),
            "unsuccessful": stats.get("unsuccessful_expectations", 0),
            "success_percent": stats.get("success_percent"),
            "statistics_json": json.dumps(stats),
            "results_json": json.dumps(meta["results"], default=str),
            "batch_checks_json": json.dumps(meta["batch_checks"], default=str),
            "started_at": datetime.fromisoformat(meta["started_at"]),
            "ended_at": datetime.fromisoformat(meta["ended_at"]),
        },
    )


def _quarantine_bad_files(
    con: duckdb.DuckDBPyConnection, feed: str, bad: list[BatchFile], params: dict[str, Any]
) -> None:
    now = _now()
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
    _insert_quarantine_rows(con, rows, params)


def _insert_quarantine_rows(
    con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]] | pa.Table, params: dict[str, Any]
) -> None:
    table = (
        rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=QUARANTINE_ROWS)
    )
    con.register("quarantine_rows", table)
    try:
        SQL.run(con, "dq/insert_quarantine.sql", params)
    finally:
        con.unregister("quarantine_rows")


QUARANTINE_ROWS = pa.schema(
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


def _cleanup(work: dict[str, str]) -> None:
    for key in ("batch", "flags", "meta"):
        Path(work[key]).unlink(missing_ok=True)


def load_quarantine(settings: Settings, files: list[str], load_run_id: str) -> dict[str, int]:
    """Load quarantine Parquet files into dq.quarantine (ledgered, one transaction)."""
    if not files:
        return {}
    infos: list[BatchFile] = []
    tables: list[pa.Table] = []
    for raw in files:
        p = Path(raw)
        try:
            st = p.stat()
            sha = sha256_file(p)
        except FileNotFoundError:  # set aside by ingest since discovery: found there next run
            log.warning("%s vanished since discovery; skipped", raw)
            continue
        try:
            t = pq.read_table(p).select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
        except Exception as exc:
            infos.append(
                BatchFile(raw, sha, st.st_size, st.st_mtime_ns, 0, f"{type(exc).__name__}: {exc}")
            )
            continue
        tables.append(_quarantine_rows(t, raw))
        infos.append(BatchFile(raw, sha, st.st_size, st.st_mtime_ns, t.num_rows))
    params = {"load_run_id": load_run_id, "loaded_at": _now()}
    per_feed: dict[str, int] = {}
    with db.writer(settings) as con:
        con.execute("begin transaction")
        try:
            known = _known_checksums(con, [f.sha256 for f in infos])
            fresh_paths = {f.path for f in infos if f.sha256 not in known}
            fresh = [f for f in infos if f.path in fresh_paths]
            parts = [t for t in tables if t.num_rows and t["source_file"][0].as_py() in fresh_paths]
            if parts:
                table = pa.concat_tables(parts)
                con.register("quarantine_rows", table)
                try:
                    per_feed = dict(SQL.run(con, "dq/quarantine_counts.sql").fetchall())
                    SQL.run(con, "dq/insert_quarantine.sql", params)
                finally:
                    con.unregister("quarantine_rows")
            bad = [f for f in fresh if f.error]
            if bad:
                _quarantine_bad_files(con, None, bad, params)  # type: ignore[arg-type]
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
                _register_ledger(con, fresh, "quarantine", None)
                SQL.run(con, "meta/insert_ledger.sql", params)
            _remember_paths(con, infos, "quarantine", params)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    _set_aside(
        settings, [f for f in infos if f.error], settings.quarantine_dir, "quarantine", params
    )
    return per_feed


def _quarantine_rows(t: pa.Table, source_file: str) -> pa.Table:
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
        schema=QUARANTINE_ROWS,
    )


# ---------------------------------------------------------------- follow-up steps


def record_dq(settings: Settings) -> int:
    """Recompute dq.site_day_completeness for the days of load batches not yet recorded, and
    refresh the staging views (``warehouse.staging``)."""
    with db.writer(settings) as con:
        con.execute("begin transaction")
        try:
            load_dim_site(con, settings)
            SQL.run(con, "dq/site_day_completeness.sql")
            n = con.execute("select count(*) from days_todo").fetchone()[0]  # type: ignore[index]
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        # Every run passes here after its loads: the views follow the configured home.
        # Outside the transaction: a view that cannot be bound must not undo the dq rows.
        staging.refresh_views(con, settings)
    return int(n)


def mark_dirty_days(settings: Settings) -> list[tuple[str, str]]:
    """Upsert core.dirty_days for load batches not yet marked; return the pending dirty days."""
    with db.writer(settings) as con:
        con.execute("begin transaction")
        try:
            SQL.run(con, "core/mark_dirty_days.sql")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        rows = SQL.run(con, "core/dirty_days_pending.sql").fetchall()
    return [(f, d.isoformat()) for f, d in rows]


def store_docs_result(settings: Settings, validation: Any) -> list[Any] | None:
    """Keep a trimmed copy of the GX result in the file context for Data Docs."""
    from expectations.docs import store_result

    try:
        return store_result(settings.gx_dir, validation)
    except Exception:  # Data Docs are a view; never lose a load over them
        log.exception("could not store the validation result for Data Docs")
        return None


def build_data_docs(settings: Settings, load_run_id: str | None = None) -> str | None:
    """Build the Data Docs site; store each validation page's path in dq.validation_runs."""
    from expectations.docs import build

    index, pages = build(settings.gx_dir)
    if pages and settings.warehouse_path.exists():
        with db.writer(settings) as con:
            for vrid, url in pages.items():
                SQL.run(con, "dq/set_data_docs_url.sql", {"validation_run_id": vrid, "url": url})
    return index


def cleanup_work(settings: Settings, load_run_id: str) -> None:
    shutil.rmtree(work_dir(settings, load_run_id), ignore_errors=True)
