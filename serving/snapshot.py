"""Read-only snapshot copies of the single-file warehouse, so the API never waits for a writer
and never makes one wait for long.

DuckDB refuses even read-only opens of a file while a writer has it, and a writer holds it for
a whole load or KPI run. So the API does not read the warehouse file: it reads a copy.

- :func:`publish` copies ``citypipe.duckdb`` to ``{home}/serve/snapshot-<utc>-<pid>.duckdb``
  while holding the warehouse lock *shared* (no writer is inside then, so the file is
  consistent, and a reader's shared lock never blocks another reader), but only when the lock
  is free at once (never queues behind a writer) and the file changed since the last snapshot
  (size and mtime). Then it points ``{home}/serve/current.json`` at the copy (write aside,
  ``os.replace``: atomic), so a reader sees the old snapshot or the new one, never half of one.
- A reader holds a shared ``flock`` on the snapshot file it has open; :func:`remove_unused`
  deletes a snapshot that is not current only when it can take that flock exclusively, i.e.
  no process reads it any more.

The API calls :func:`publish` itself, from a background thread, whenever the warehouse file
changed (docs/serving.md says why there rather than in the load and KPI steps).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.settings import Settings
from warehouse import db

log = logging.getLogger(__name__)

POINTER = "current.json"


@dataclass(frozen=True)
class Published:
    """What ``current.json`` says: the snapshot file and the warehouse state it copies."""

    path: Path
    source_mtime_ns: int
    source_size: int
    published_at: datetime


def snapshot_dir(settings: Settings) -> Path:
    return settings.home / "serve"


def current(settings: Settings) -> Published | None:
    """The snapshot the pointer names, if it and its file exist."""
    folder = snapshot_dir(settings)
    try:
        doc = json.loads((folder / POINTER).read_text(encoding="utf-8"))
        path = folder / str(doc["snapshot"])
        published = Published(
            path=path,
            source_mtime_ns=int(doc["source_mtime_ns"]),
            source_size=int(doc["source_size"]),
            published_at=datetime.fromisoformat(str(doc["published_at"])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return published if path.exists() else None


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def publish(settings: Settings) -> Published | None:
    """Copy the warehouse file to a new snapshot if it changed and no writer holds it.

    Returns the new snapshot, or None when nothing was published (unchanged, no warehouse yet,
    or a writer busy: the next call tries again). Never waits for the lock.
    """
    source = settings.warehouse_path
    if settings.warehouse_target.is_lake or not source.exists():
        return None
    before = current(settings)
    if before is not None and (before.source_mtime_ns, before.source_size) == _stamp(source):
        return None
    folder = snapshot_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    name = f"snapshot-{now.strftime('%Y%m%dT%H%M%S%fZ')}-{os.getpid()}.duckdb"
    tmp = folder / f".{name}.tmp"
    try:
        with db.shared_lock(settings, timeout_s=0):
            mtime_ns, size = _stamp(source)
            if before is not None and (before.source_mtime_ns, before.source_size) == (
                mtime_ns,
                size,
            ):
                return None
            shutil.copyfile(source, tmp)
            wal = source.with_name(source.name + ".wal")
            if wal.exists():  # only after a crashed writer; the copy then replays it
                shutil.copyfile(wal, folder / f"{name}.wal")
    except db.LockTimeout:
        log.debug("warehouse busy: snapshot not published this time")
        return None
    os.replace(tmp, folder / name)
    published = Published(folder / name, mtime_ns, size, now)
    _point_to(folder, published)
    log.info("published warehouse snapshot %s (%d bytes)", name, size)
    remove_unused(settings)
    return published


def _point_to(folder: Path, published: Published) -> None:
    doc = {
        "snapshot": published.path.name,
        "source_mtime_ns": published.source_mtime_ns,
        "source_size": published.source_size,
        "published_at": published.published_at.isoformat(),
    }
    tmp = folder / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, folder / POINTER)


def hold(path: Path) -> int:
    """Mark a snapshot as read by this process (shared flock, released by closing the fd)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def remove_unused(settings: Settings) -> list[Path]:
    """Delete snapshots that are not current and that no process holds."""
    folder = snapshot_dir(settings)
    now = current(settings)
    removed: list[Path] = []
    for path in sorted(folder.glob("snapshot-*.duckdb")):
        if now is not None and path == now.path:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # still read by someone
        try:
            path.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + ".wal").unlink()
            removed.append(path)
        finally:
            os.close(fd)
    return removed
