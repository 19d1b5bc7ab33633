"""The load ledger: which landing and quarantine files are new, by path and by checksum.

A file is loaded once: ``meta.load_ledger`` keeps the sha256 of every file loaded, and
``meta.ledger_paths`` every path seen (loaded, or skipped as a copy of a loaded file) with its
size and mtime, so discovery does not bring an unchanged path back.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from common.catalogue import FEEDS
from common.settings import Settings
from ingestion.landing import set_aside, unreadable_root
from warehouse import SQL, db

log = logging.getLogger(__name__)

# A batch larger than this waits for the next run (bounds memory: see docs/warehouse.md).
MAX_BATCH_ROWS = 2_000_000


@dataclass
class BatchFile:
    """One file of a batch as the ledger records it; ``error`` set when it could not be read."""

    path: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    rows: int
    error: str | None = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_identity(raw: str) -> tuple[str, int, int] | None:
    """(sha256, size, mtime_ns) of a file; None when it vanished since discovery (ingest set
    it aside: it is found there next run)."""
    p = Path(raw)
    try:
        st = p.stat()
        return sha256_file(p), st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        log.warning("%s vanished since discovery; skipped", raw)
        return None


def _known_paths(settings: Settings) -> set[tuple[str, int, int]]:
    if not db.exists(settings):
        return set()
    with db.reader(settings) as con:
        try:
            rows = SQL.run(con, "meta/select_loaded_files.sql").fetchall()
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
    known = _known_paths(settings)
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


def known_checksums(con: duckdb.DuckDBPyConnection, shas: list[str]) -> set[str]:
    """The checksums of ``shas`` already in the ledger (files loaded before)."""
    if not shas:
        return set()
    rows = SQL.run(con, "meta/select_known_checksums.sql", {"checksums": shas}).fetchall()
    return {r[0] for r in rows}


def _register(
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


def record_loaded(
    con: duckdb.DuckDBPyConnection,
    files: list[BatchFile],
    kind: str,
    feed: str | None,
    params: dict[str, Any],
) -> None:
    """Add the files just loaded to ``meta.load_ledger`` (inside the load's transaction)."""
    _register(con, files, kind, feed)
    SQL.run(con, "meta/insert_ledger.sql", params)


def remember_paths(
    con: duckdb.DuckDBPyConnection, files: list[BatchFile], kind: str, params: dict[str, Any]
) -> None:
    """Record every path of the batch (loaded or skipped as a known checksum) with its size and
    mtime in ``meta.ledger_paths``; discovery skips a path that still matches."""
    if not files:
        return
    _register(con, files, kind, None)
    SQL.run(con, "meta/insert_ledger_paths.sql", params)


def set_aside_unreadable(
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
        db.write(settings, lambda con: remember_paths(con, moved, kind, params), what="set aside")
