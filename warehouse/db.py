"""Warehouse connections and the single-writer lock.

DuckDB allows one read-write process per file. Every writer (ingest DAG, KPI DAG, CLI tools)
takes :func:`write_lock` first, so two writers queue instead of failing on DuckDB's own
file lock. Connections run in UTC so results never depend on the machine's time zone;
local days are cut explicitly with ``timezone('Asia/Shanghai', ...)`` in SQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from citypipe.settings import Settings

# DuckDB raises IOException while another process holds the file read-write.
_OPEN_RETRY_S = 30.0


def lock_path(settings: Settings) -> Path:
    return settings.warehouse_path.with_name(settings.warehouse_path.name + ".lock")


@contextlib.contextmanager
def write_lock(settings: Settings, timeout_s: float | None = None) -> Iterator[Path]:
    """Hold the exclusive warehouse write lock (fcntl, beside the DB file).

    Blocks until the lock is free, or raises ``TimeoutError`` after ``timeout_s``.
    The lock is released when the block exits or the process dies (the kernel drops it).
    """
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"warehouse write lock {path} busy") from None
                    time.sleep(0.1)
        yield path
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings every warehouse connection gets."""
    con.execute("set TimeZone = 'UTC'")
    return con


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (creating its directory for a writer), in UTC.

    Writers must hold :func:`write_lock`. A reader retries for a while when a writer in another
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
    with write_lock(settings):
        con = connect(settings, read_only=False)
        try:
            if migrate:
                from warehouse.migrate import migrate as _migrate

                _migrate(con)
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection taken under the write lock, so it never races a writer."""
    with write_lock(settings):
        con = connect(settings, read_only=True)
        try:
            yield con
        finally:
            con.close()
