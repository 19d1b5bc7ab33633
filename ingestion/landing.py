"""Atomic Parquet files in the landing zone and quarantine.

A landing file appears under its final name only once it is complete and on disk: it is written to a
hidden temp name in the same directory, fsync'd, renamed, and the directory is fsync'd so the rename
itself survives a power cut. Readers (the warehouse loader, the dedupe index) glob ``*.parquet`` and
never see a temp file; a crash before the rename leaves only a ``.part-*.tmp`` file, which
``remove_stale_temp_files`` deletes at the next start.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.schema import QUARANTINE_SCHEMA, landing_schema

log = logging.getLogger(__name__)

TEMP_PREFIX = ".part-"
TEMP_SUFFIX = ".tmp"
# zstd: ~2x smaller than snappy on sensor readings at a similar write cost.
COMPRESSION = "zstd"


def landing_partition(landing_dir: Path, feed: str, local_date: date) -> Path:
    return landing_dir / feed / f"local_date={local_date.isoformat()}"


def quarantine_partition(quarantine_dir: Path, received_date: date) -> Path:
    return quarantine_dir / f"received_date={received_date.isoformat()}"


def part_name(now: datetime | None = None) -> str:
    """``part-{utc stamp}-{uuid}.parquet``: sortable by write time, unique across processes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{stamp}-{uuid.uuid4().hex}.parquet"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(directory: Path) -> None:
    """Create ``directory`` and fsync each new parent, so the new entries are durable too."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    if not missing:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


UNREADABLE = "unreadable"


def unreadable_root(root: Path) -> Path:
    """Where unreadable files of ``root`` (the landing or quarantine folder) are set aside:
    ``{home}/unreadable/{landing|quarantine}/...``, outside every glob that reads data."""
    return root.parent / UNREADABLE / root.name


def set_aside(path: Path, root: Path) -> Path | None:
    """Move an unreadable file out of ``root`` (same relative path under ``unreadable_root``).

    One corrupt file must not stop ingest or the load, nor break the staging views that glob
    the folder; moved, it stays for inspection and the ingest DAG records it in dq.quarantine
    as ``landing_file_unreadable``. Returns the new path (None: already gone).
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None  # already set aside, or not ours
    dest = unreadable_root(root) / rel
    _ensure_dir(dest.parent)
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return None
    fsync_dir(dest.parent)
    fsync_dir(path.parent)
    return dest


def owner_tag(client_id: str) -> str:
    """A client id as a temp-file tag: no dot, so ``.{tag}.tmp`` names exactly one owner."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


def _temp_path(directory: Path, final_name: str, owner: str) -> Path:
    tag = f".{owner_tag(owner)}" if owner else ""
    return directory / f"{TEMP_PREFIX}{final_name}{tag}{TEMP_SUFFIX}"


def write_table_atomic(table: pa.Table, directory: Path, owner: str = "") -> Path:
    """Write ``table`` as a new Parquet file in ``directory``; return its final path.

    Durable on return (file and directory entry fsync'd). On any error the temp file is removed
    and the exception propagates: the caller must not acknowledge the messages it holds.
    ``owner`` (the ingest client id) tags the temp file, so that a starting instance removes only
    its own dead predecessor's leftovers, never a file another instance is writing.
    """
    _ensure_dir(directory)
    final = directory / part_name()
    tmp = _temp_path(directory, final.name, owner)
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression=COMPRESSION)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def remove_stale_temp_files(*roots: Path, owner: str | None = None) -> int:
    """Delete temp files a crashed writer left behind (never complete, never acknowledged).

    ``owner``: only that client id's (its writer holds the client id's lock, so they are dead);
    instances on one shared subscription write into the same folders at the same time. None:
    every temp file (no writer may be running)."""
    pattern = f"{TEMP_PREFIX}*{TEMP_SUFFIX}"
    if owner is not None:
        pattern = f"{TEMP_PREFIX}*.parquet.{owner_tag(owner)}{TEMP_SUFFIX}"
    removed = 0
    for root in roots:
        if not root.exists():
            continue
        for tmp in root.rglob(pattern):
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.warning("removed %d incomplete temp file(s) left by an earlier crash", removed)
    return removed


def rows_to_table(rows: Iterable[Mapping[str, object]], schema: pa.Schema) -> pa.Table:
    """Column-wise build (faster than ``from_pylist`` for wide rows); missing keys become null.

    ``pa.array`` per column, not ``pa.table(dict)``: the latter imports pandas (~2 s, ~50 MB).
    """
    rows = list(rows)
    arrays = [pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def landing_table(feed: str, rows: Iterable[Mapping[str, object]]) -> pa.Table:
    return rows_to_table(rows, landing_schema(feed))


def quarantine_table(rows: Iterable[Mapping[str, object]]) -> pa.Table:
    return rows_to_table(rows, QUARANTINE_SCHEMA)


def list_parts(directory: Path) -> list[Path]:
    """Complete files of one partition (temp files are hidden and never match)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("part-*.parquet") if p.is_file())
