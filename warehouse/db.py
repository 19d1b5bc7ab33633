"""The one warehouse connection factory, the warehouse lock, and the retry of lake writers.

Every stage opens the warehouse here; no SQL model knows which backend runs it
(``settings.warehouse_target``, docs/warehouse.md). On a DuckLake backend the lake is attached
as ``lake`` and made the default database, so ``core.obs_air`` means the same everywhere.

Single DuckDB file: DuckDB allows one read-write process per file, and refuses read-only opens while a writer has it.
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
import importlib.util
import logging
import os
import random
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from common.settings import Settings
from common.sql import literal, transaction
from common.warehouse_url import WarehouseTarget
from warehouse import SQL

T = TypeVar("T")

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
    return settings.warehouse_dir / "citypipe.duckdb.lock"


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


def extension_directory() -> str:
    """Where the duckdb-ext-* wheels put the extension binaries (a namespace package with no
    code): DuckDB appends ``v1.4.4/<platform>/`` itself. No download ever happens at run time."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the duckdb-ext-* packages are not installed (uv sync)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "extensions")


def _config() -> dict[str, str | bool | int | float | list[str]]:
    return {"extension_directory": extension_directory(), "autoinstall_known_extensions": False}


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings every warehouse connection gets."""
    SQL.run(con, "session/set_utc_time_zone.sql")
    return con


def exists(settings: Settings) -> bool:
    """Whether the warehouse has been created (a first load or migration has run)."""
    target = settings.warehouse_target
    if target.kind == "sqlite":
        return target.path is not None and _sqlite_lake_created(target.path)
    if target.kind != "postgres":
        return target.path is not None and target.path.exists()
    with _LAKES_LOCK:
        # A lake this process has attached exists (a read-only attach needs the catalog).
        attached = _lake_key(settings, target, False)[:3]
        if any(k[:3] == attached for k in _LAKES):
            return True
    con = duckdb.connect(config=_config())
    try:
        password = settings.warehouse_password
        dsn = target.pg_dsn(password.get_secret_value() if password else None)
        con.execute(f"ATTACH {literal(dsn)} AS pg (TYPE postgres, READ_ONLY)")
        schema = target.metadata_schema or "public"
        found = SQL.run(con, "session/count_lake_catalog.sql", {"schema": schema}).fetchone()
        return bool(found and found[0])
    finally:
        con.close()


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating it for a writer), in UTC, with ``lake`` as default database
    on a DuckLake backend.

    Single file: writers must hold :func:`exclusive_lock`; a reader retries for a while when a
    writer in another process has the file open, since DuckDB refuses read-only opens then.
    """
    target = settings.warehouse_target
    if target.is_lake:
        return configure(_connect_lake(settings, target, read_only))
    path = settings.warehouse_path
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet (no load has run)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _OPEN_RETRY_S
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=_config())
            return configure(con)
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


# One DuckDB instance per process and lake (read-only and read-write apart), the lake attached
# once; connections are cursors of it. A new instance verifies the extensions' signatures
# (0.2-0.3 s each, 1-2 s per connection under load: docs/warehouse.md, Performance), while a
# cursor is free, and each of its transactions still reads the latest snapshot. Bounded, so a
# process that opens many lakes (the tests) never holds many catalog connections.
_LAKES: OrderedDict[tuple[object, ...], duckdb.DuckDBPyConnection] = OrderedDict()
_LAKES_LOCK = threading.RLock()
_LAKES_MAX = 4


def _lake_key(settings: Settings, target: WarehouseTarget, read_only: bool) -> tuple[object, ...]:
    secrets = (settings.warehouse_password, settings.s3_secret_access_key)
    values = tuple(s.get_secret_value() if s is not None else None for s in secrets)
    s3 = (settings.s3_endpoint, settings.s3_access_key_id, settings.s3_region, settings.s3_use_ssl)
    return (os.getpid(), target, settings.lake_data_path, read_only, s3, values)


def _connect_lake(
    settings: Settings, target: WarehouseTarget, read_only: bool
) -> duckdb.DuckDBPyConnection:
    key = _lake_key(settings, target, read_only)
    with _LAKES_LOCK:
        base = _LAKES.get(key)
        if base is not None:
            _LAKES.move_to_end(key)
        else:
            if read_only and not exists(settings):
                raise FileNotFoundError(f"warehouse ({target.describe()}) does not exist yet")
            base = _attach_lake(settings, target, read_only)
            _LAKES[key] = base
            while len(_LAKES) > _LAKES_MAX:
                # Cursors handed out keep their instance alive until they close.
                _LAKES.popitem(last=False)[1].close()
    con = base.cursor()
    try:
        con.execute("USE lake")
    except duckdb.Error:
        con.close()
        forget_lakes()  # an invalidated instance (FatalException) is never reused
        raise
    return con


def forget_lakes() -> None:
    """Drop this process's cached lake instances (after a fatal DuckDB error, or in tests)."""
    with _LAKES_LOCK:
        while _LAKES:
            _LAKES.popitem()[1].close()


def _attach_lake(
    settings: Settings, target: WarehouseTarget, read_only: bool
) -> duckdb.DuckDBPyConnection:
    data_path = settings.lake_data_path
    if target.kind == "sqlite":
        assert target.path is not None
        if not read_only:
            _prepare_sqlite_catalog(target.path)
        metadata = f"sqlite:{target.path}"
    else:
        password = settings.warehouse_password
        metadata = "postgres:" + target.pg_dsn(password.get_secret_value() if password else None)
    if not data_path.startswith("s3://") and not read_only:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    options = [f"DATA_PATH {literal(data_path)}"]
    if target.metadata_schema:
        options.append(f"METADATA_SCHEMA {literal(target.metadata_schema)}")
    if read_only:
        options.append("READ_ONLY")
    attempt = 0
    while True:
        attempt += 1
        con = duckdb.connect(config=_config())
        try:
            if data_path.startswith("s3://"):
                _create_s3_secret(con, settings)
            # ATTACH takes no bound parameters; every value is a quoted literal (common.sql.literal).
            con.execute(f"ATTACH {literal('ducklake:' + metadata)} AS lake ({', '.join(options)})")
            return con
        except duckdb.Error as exc:
            con.close()
            if attempt >= _INIT_ATTEMPTS or not _lost_init_race(exc):
                raise
            time.sleep(0.1 * attempt * (0.5 + random.random()))
        except BaseException:
            con.close()
            raise


# Two processes creating one new lake at once: the loser's ATTACH fails while the winner
# writes the catalog tables (SQLite: locked; PostgreSQL: the schema or a table exists already).
# Attaching again then finds the finished catalog.
_INIT_ATTEMPTS = 10
_INIT_RACE = ("database is locked", "duplicate key", "already exists")


def _lost_init_race(exc: duckdb.Error) -> bool:
    text = str(exc)
    return "Failed to initialize DuckLake" in text and any(t in text for t in _INIT_RACE)


def _sqlite_lake_created(path: Path) -> bool:
    """The SQLite catalog holds a DuckLake. The file alone is not enough: it is made empty
    before the first writer attaches (_prepare_sqlite_catalog), and a writer killed in between
    left one that every reader refused ("creating a new DuckLake is explicitly disabled"), so
    each later ingest run failed at discover."""
    if not path.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(
                "select count(*) from sqlite_master where name = 'ducklake_metadata'"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return True  # not ours to judge (e.g. locked): let the attach say what is wrong
    return bool(row and row[0])


def _prepare_sqlite_catalog(path: Path) -> None:
    """Create the SQLite catalog in WAL mode: with the default journal, readers fail while a
    writer commits (docs/research/ducklake_2026-12.md); WAL persists in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    # Made aside and linked into place, so a process that starts at the same moment never
    # attaches the file before it is in WAL mode (and never holds it locked meanwhile).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    db = sqlite3.connect(tmp)
    try:
        db.execute("pragma journal_mode=wal")
    finally:
        db.close()
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first
    finally:
        tmp.unlink()


def _create_s3_secret(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """A temporary (per-connection) secret: credentials stay in settings, never in the catalog."""
    key = settings.s3_secret_access_key
    parts = [
        "TYPE s3",
        f"REGION {literal(settings.s3_region)}",
        f"URL_STYLE {literal(settings.s3_url_style)}",
        f"USE_SSL {'true' if settings.s3_use_ssl else 'false'}",
    ]
    if settings.s3_endpoint:
        parts.append(f"ENDPOINT {literal(settings.s3_endpoint)}")
    if settings.s3_access_key_id:
        parts.append(f"KEY_ID {literal(settings.s3_access_key_id)}")
    if key is not None:
        parts.append(f"SECRET {literal(key.get_secret_value())}")
    con.execute(f"CREATE TEMPORARY SECRET citypipe_s3 ({', '.join(parts)})")


@contextlib.contextmanager
def writer(settings: Settings, migrate: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """Connect read-write (single file: under the exclusive lock), apply pending migrations,
    yield; close (and unlock) after. A lake takes no lock: writers commit optimistically, so
    wrap units of work in :func:`write` to retry conflicts."""
    lock = (
        contextlib.nullcontext(None)
        if settings.warehouse_target.is_lake
        else exclusive_lock(settings)
    )
    with lock:
        con = connect(settings, read_only=False)
        try:
            if migrate:
                applied = _migrate_all(settings, con)
                if applied and not settings.warehouse_target.is_lake:
                    # DuckDB 1.4 cannot replay a WAL holding the migrations' DDL ("Failure while
                    # replaying WAL ... no default database set"): a writer killed before its
                    # close's checkpoint left a file no process could open again. Checkpointed
                    # here (only when a migration ran), the WAL holds at most the work that follows.
                    con.execute("CHECKPOINT")
            yield con
        finally:
            con.close()


def writer_slots(settings: Settings) -> int:
    """Slots of the Airflow pool the writing tasks share (``citypipe_duckdb``, dags/): one on
    the single file (DuckDB admits one writer process; more slots would only queue on the
    lock), several on a lake (``settings.warehouse_writer_slots``): loads of different feeds
    then run at once, and conflicting commits are redone (:func:`write`)."""
    if not settings.warehouse_target.is_lake:
        return 1
    return max(1, settings.warehouse_writer_slots)


def _migrate_all(settings: Settings, con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the pending migrations; return the versions applied now."""
    from common.migrate import migrate as _migrate
    from warehouse import MIGRATIONS_DIR

    return retrying(settings, lambda: _migrate(con, MIGRATIONS_DIR), what="migrations")


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection. Single file: under the shared lock, so it never races a
    writer and never blocks another reader; raises :class:`LockTimeout` after
    ``settings.lock_timeout_s``. Lake: no lock at all; it reads the last committed snapshot."""
    lock = (
        contextlib.nullcontext(None) if settings.warehouse_target.is_lake else shared_lock(settings)
    )
    with lock:
        con = connect(settings, read_only=True)
        try:
            yield con
        finally:
            con.close()


_RETRYABLE = ("Transaction conflict", "database is locked", "Failed to commit DuckLake")


def is_retryable(exc: BaseException) -> bool:
    """A lake commit that lost a race: another writer changed the same data file, or the SQLite
    catalog was busy. Redoing the whole transaction on a fresh snapshot is then correct."""
    if not isinstance(exc, duckdb.Error) or isinstance(exc, duckdb.FatalException):
        return False
    return isinstance(exc, duckdb.TransactionException) or any(t in str(exc) for t in _RETRYABLE)


def retrying(settings: Settings, work: Callable[[], T], *, what: str = "write") -> T:
    """Run ``work`` again after a retryable lake error, with exponential backoff and jitter,
    up to ``settings.warehouse_write_retries`` times. ``work`` must be a whole unit: it opens
    its own connection and leaves nothing behind when it fails (no counters bumped, no files
    moved before its commit), so redoing it cannot count anything twice. The single file runs
    ``work`` once: its writers queue on the lock and never conflict."""
    if not settings.warehouse_target.is_lake:
        return work()
    attempts = max(1, settings.warehouse_write_retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            pause = min(5.0, 0.05 * 2**attempt) * (0.5 + random.random())
            log.info("%s: retry %d after %.2f s: %s", what, attempt, pause, str(exc)[:200])
            time.sleep(pause)
    raise AssertionError("unreachable")


def write(
    settings: Settings, work: Callable[[duckdb.DuckDBPyConnection], T], *, what: str = "write"
) -> T:
    """Run ``work(con)`` as one transaction on a writer connection, redone from the start on a
    retryable conflict (a fresh connection, so it re-reads the ledger). The way to write."""

    def attempt() -> T:
        with writer(settings) as con, transaction(con):
            return work(con)

    return retrying(settings, attempt, what=what)


def write_steps(
    settings: Settings, work: Callable[[duckdb.DuckDBPyConnection], T], *, what: str = "write"
) -> T:
    """Run ``work(con)``, a unit made of steps that commit on their own (the KPI run), on a
    writer connection. On a lake it is ONE transaction (the steps' transactions join it),
    redone whole on a conflict: readers never see half a KPI run, and a redo never finds an
    earlier attempt's steps committed. The single file keeps its steps' own commits: the lock
    keeps readers out meanwhile and nothing conflicts."""

    def attempt() -> T:
        with writer(settings) as con:
            if not settings.warehouse_target.is_lake:
                return work(con)
            with transaction(con):
                return work(con)

    return retrying(settings, attempt, what=what)
