"""Warehouse connections and the warehouse lock.

DuckDB allows one read-write process per file, and refuses read-only opens while a writer has it.
An fcntl lock beside the file (``citypipe.duckdb.lock``) orders them: every writer (ingest DAG,
KPI DAG, CLI tools) takes it exclusively (:func:`exclusive_lock`), every reader shared
(:func:`shared_lock`), so writers queue behind each other and behind readers, and readers run
together. A waiter never waits silently: after ``LOCK_NOTICE_S`` it logs whom it waits for (the
writer records its pid and command in the lock file); readers give up after
``settings.lock_timeout_s`` with :class:`LockTimeout`. Connections run in UTC so results never
depend on the machine's time zone; local days are cut explicitly with ``timezone(...)`` in SQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from common.settings import Settings
from warehouse import SQL

log = logging.getLogger(__name__)

# DuckDB raises IOException while another process holds the file read-write.
_OPEN_RETRY_S = 30.0
# A waiter says whom it waits for after this long, then again every LOCK_RENOTICE_S.
LOCK_NOTICE_S = 3.0
LOCK_RENOTICE_S = 60.0
_POLL_S = 0.05


class LockTimeout(TimeoutError):
    """The warehouse lock stayed busy past the caller's timeout."""


def lock_path(settings: Settings) -> Path:
    return settings.warehouse_path.with_name(settings.warehouse_path.name + ".lock")


def lock_holder(path: Path) -> str:
    """Who holds the lock, as the current writer recorded it; readers record nothing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "readers (shared lock), or a writer that has not recorded itself yet"


def _acquire(fd: int, path: Path, shared: bool, timeout_s: float | None) -> None:
    mode = "read" if shared else "write"
    op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    start = time.monotonic()
    notice_at = start + LOCK_NOTICE_S
    while True:
        try:
            fcntl.flock(fd, op)
            waited = time.monotonic() - start
            if waited >= LOCK_NOTICE_S:
                log.warning("warehouse %s lock %s taken after %.1f s", mode, path, waited)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        if timeout_s is not None and now - start >= timeout_s:
            raise LockTimeout(
                f"gave up after {now - start:.0f} s waiting for the warehouse {mode} lock {path};"
                f" held by {lock_holder(path)}. Retry later, or raise CITYPIPE_LOCK_TIMEOUT_S"
            )
        if now >= notice_at:
            limit = "no time limit" if timeout_s is None else f"giving up after {timeout_s:g} s"
            log.warning(
                "waiting %.0f s so far for the warehouse %s lock %s, held by %s (%s)",
                now - start,
                mode,
                path,
                lock_holder(path),
                limit,
            )
            notice_at = now + LOCK_RENOTICE_S
        time.sleep(_POLL_S)


def _open_lock_file(settings: Settings, write: bool) -> tuple[int, Path]:
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readers open it read-only, so a group member allowed to read the data can take it shared.
    # Mode 0o666 filtered by the process umask: the data-folder policy (docs/operations.md).
    flags = (os.O_RDWR if write else os.O_RDONLY) | os.O_CREAT
    return os.open(path, flags, 0o666), path


@contextlib.contextmanager
def exclusive_lock(settings: Settings, timeout_s: float | None = None) -> Iterator[Path]:
    """Hold the exclusive warehouse lock: no other writer and no reader meanwhile.

    Waits without limit, or raises :class:`LockTimeout` after ``timeout_s``; says whom it waits
    for after ``LOCK_NOTICE_S``. Records this process (pid, start, command) in the lock file for
    other waiters. Released when the block exits or the process dies (the kernel drops it).
    """
    fd, path = _open_lock_file(settings, write=True)
    held = False
    try:
        _acquire(fd, path, shared=False, timeout_s=timeout_s)
        held = True
        since = datetime.now(UTC).isoformat(timespec="seconds")
        command = " ".join(sys.argv)[:300]
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"writer pid {os.getpid()} since {since}: {command}\n".encode(), 0)
        yield path
    finally:
        if held:
            os.ftruncate(fd, 0)  # a stale record would name a process that is gone
        # Closing the descriptor releases the flock.
        os.close(fd)


@contextlib.contextmanager
def shared_lock(settings: Settings, timeout_s: float | None = None) -> Iterator[Path]:
    """Hold the warehouse lock shared: writers wait, other readers do not.

    ``timeout_s`` defaults to ``settings.lock_timeout_s``; past it, :class:`LockTimeout`.
    """
    fd, path = _open_lock_file(settings, write=False)
    limit = settings.lock_timeout_s if timeout_s is None else timeout_s
    try:
        _acquire(fd, path, shared=True, timeout_s=limit)
        yield path
    finally:
        os.close(fd)


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings every warehouse connection gets."""
    SQL.run(con, "session/set_utc_time_zone.sql")
    return con


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (creating its directory for a writer), in UTC.

    Writers must hold :func:`exclusive_lock`. A reader retries for a while when a writer in another
    process has the file open, since DuckDB refuses read-only opens during a write.
    """
    path = settings.warehouse_path
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet (no load has run)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _OPEN_RETRY_S
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            return configure(con)
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def writer(settings: Settings, migrate: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """Lock, connect read-write, apply pending migrations, yield; close and unlock after."""
    with exclusive_lock(settings):
        con = connect(settings, read_only=False)
        try:
            if migrate:
                from common.migrate import migrate as _migrate
                from warehouse import MIGRATIONS_DIR

                _migrate(con, MIGRATIONS_DIR)
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection under the shared lock: never races a writer, never blocks
    another reader. Raises :class:`LockTimeout` after ``settings.lock_timeout_s``."""
    with shared_lock(settings):
        con = connect(settings, read_only=True)
        try:
            yield con
        finally:
            con.close()
