"""Where the API reads from: per request, a DuckDB cursor on a long-lived read-only database.

- DuckLake (SQLite or PostgreSQL catalog): ``warehouse.db.reader`` kept open for the life of
  the process. No lock; each statement reads the last committed lake snapshot, so readers never
  wait for writers and writers never wait for them.
- Single DuckDB file: the newest published snapshot copy (:mod:`serving.snapshot`). A
  background thread publishes a new copy when the warehouse file changed and no writer holds
  it, then swaps it in; requests already running finish on the old copy, which is closed and
  deleted after its last reader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from common.settings import Settings
from serving import snapshot
from warehouse import db

log = logging.getLogger(__name__)

# How often the snapshot thread looks at the warehouse file (a stat; a copy only on change).
REFRESH_S = 1.0


class NotReady(RuntimeError):
    """No warehouse to read yet (no load has run), or it cannot be opened now."""


@dataclass
class _Generation:
    """One open database (a snapshot copy, or the lake) and the requests using it."""

    con: duckdb.DuckDBPyConnection
    label: str
    published_at: datetime | None = None
    path: Path | None = None
    fd: int | None = None
    refs: int = 0
    retired: bool = False
    closed: bool = field(default=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.con.close()
        if self.fd is not None:
            os.close(self.fd)  # releases the shared flock: the snapshot may now be removed


class Source:
    """Hands out cursors (``with source.cursor() as cur``); thread-safe."""

    def __init__(self, settings: Settings, *, refresh_s: float = REFRESH_S) -> None:
        self.settings = settings
        self.is_lake = settings.warehouse_target.is_lake
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._gen: _Generation | None = None
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open what can be opened now; on the file, start the snapshot thread."""
        with contextlib.suppress(NotReady):
            self._ensure()
        if not self.is_lake:
            self._thread = threading.Thread(target=self._refresh_loop, name="snapshot", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            gen, self._gen = self._gen, None
            if gen is not None:
                gen.retired = True
                if gen.refs == 0:
                    gen.close()
        self._stack.close()

    # -- reading ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        gen = self._acquire()
        try:
            cur = gen.con.cursor()
            try:
                if self.is_lake:
                    cur.execute("use lake")
                db.configure(cur)
                yield cur
            finally:
                cur.close()
        finally:
            self._release(gen)

    def describe(self) -> dict[str, Any]:
        gen = self._gen
        return {
            "backend": self.settings.warehouse_target.kind,
            "reads_from": None if gen is None else gen.label,
            "snapshot_published_at": None if gen is None else gen.published_at,
        }

    def _acquire(self) -> _Generation:
        gen = self._ensure()
        with self._lock:
            current = self._gen or gen
            current.refs += 1
            return current

    def _release(self, gen: _Generation) -> None:
        with self._lock:
            gen.refs -= 1
            done = gen.retired and gen.refs == 0
        if done:
            gen.close()
            if not self.is_lake:
                snapshot.remove_unused(self.settings)

    def _ensure(self) -> _Generation:
        gen = self._gen
        if gen is not None:
            return gen
        with self._lock:
            if self._gen is None:
                self._gen = self._open_lake() if self.is_lake else self._open_snapshot(None)
            return self._gen

    # -- DuckLake ---------------------------------------------------------------------------

    def _open_lake(self) -> _Generation:
        try:
            con = self._stack.enter_context(db.reader(self.settings))
        except FileNotFoundError as exc:
            raise NotReady(str(exc)) from None
        return _Generation(con=con, label=self.settings.warehouse_target.describe())

    # -- single file: snapshots -------------------------------------------------------------

    def _open_snapshot(self, published: snapshot.Published | None) -> _Generation:
        """Open the current snapshot (publishing the first one if there is none yet)."""
        for _ in range(5):
            published = published or snapshot.current(self.settings)
            if published is None:
                published = snapshot.publish(self.settings)
            if published is None:
                raise NotReady(
                    "no warehouse snapshot yet: the warehouse does not exist or a writer has"
                    " held it since this server started; retry shortly"
                )
            try:
                fd = snapshot.hold(published.path)
            except FileNotFoundError:
                published = None  # replaced and removed meanwhile: read the pointer again
                continue
            if not published.path.exists():  # removed between open and flock
                os.close(fd)
                published = None
                continue
            try:
                con = duckdb.connect(str(published.path), read_only=True)
            except BaseException:
                os.close(fd)
                raise
            return _Generation(
                con=con,
                label=published.path.name,
                published_at=published.published_at,
                path=published.path,
                fd=fd,
            )
        raise NotReady("warehouse snapshots are being replaced too fast to open one; retry")

    def refresh(self) -> bool:
        """Publish a snapshot if the warehouse changed and is free; swap to the newest one.
        True when the API now reads a newer snapshot."""
        try:
            snapshot.publish(self.settings)
        except OSError as exc:
            log.warning("could not publish a warehouse snapshot: %s", exc)
        newest = snapshot.current(self.settings)
        gen = self._gen
        if newest is None or (gen is not None and gen.path == newest.path):
            return False
        fresh = self._open_snapshot(newest)
        with self._lock:
            old, self._gen = self._gen, fresh
            done = False
            if old is not None:
                old.retired = True
                done = old.refs == 0
        if old is not None and done:
            old.close()
        snapshot.remove_unused(self.settings)
        return True

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception:  # the thread must outlive a bad moment; requests use the old copy
                log.exception("snapshot refresh failed; serving the previous snapshot")
