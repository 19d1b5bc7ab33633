"""The warehouse backends a bench runs side by side, and the machine load printed beside figures.

``--backends file,sqlite,postgres`` (the default: all three). PostgreSQL gets a database of the
bench's own (``citypipe_bench_<pid>`` on ``CITYPIPE_BENCH_PG``, default
``postgresql://postgres@127.0.0.1:5432/postgres``), created at the start and dropped at the end;
every warehouse in it is a catalog schema of its own. Without a server the PostgreSQL rows are
skipped with the reason printed, never a crash.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from common.settings import Settings, get_settings

BACKENDS = ("file", "sqlite", "postgres")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LABELS = {"file": "file", "sqlite": "lake-sqlite", "postgres": "lake-pg"}


def parse_backends(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = set(kinds) - set(BACKENDS)
    if unknown or not kinds:
        raise SystemExit(f"--backends: one or more of {','.join(BACKENDS)}, not {text!r}")
    return kinds


def machine_load() -> str:
    """The 1/5/15-minute load averages against the core count: read timings in that light."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@contextlib.contextmanager
def pg_database() -> Iterator[tuple[str | None, str]]:
    """Yield (URL of a fresh database of this bench run, "") or (None, why PostgreSQL is skipped)."""
    try:
        import psycopg
        from psycopg.sql import SQL, Identifier  # DDL takes no bound names: quoted
    except ImportError as exc:  # a dev dependency
        yield None, f"psycopg is not installed ({exc})"
        return
    admin = os.environ.get("CITYPIPE_BENCH_PG", DEFAULT_PG)
    name = f"citypipe_bench_{os.getpid()}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        yield None, f"no PostgreSQL at {admin} (set CITYPIPE_BENCH_PG): {reason}"
        return
    with conn:
        conn.execute(SQL("drop database if exists {} with (force)").format(Identifier(name)))
        conn.execute(SQL("create database {}").format(Identifier(name)))
    try:
        yield f"postgres://{urlsplit(admin).netloc}/{name}", ""
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(SQL("drop database if exists {} with (force)").format(Identifier(name)))


def warehouse_url(kind: str, home: Path, pg_url: str | None) -> str:
    """CITYPIPE_WAREHOUSE of a fresh warehouse of ``kind`` under ``home`` (or in ``pg_url``)."""
    if kind == "file":
        return f"duckdb://{home.resolve()}/warehouse/citypipe.duckdb"
    if kind == "sqlite":
        return f"ducklake:sqlite://{home.resolve()}/warehouse/catalog.sqlite"
    if pg_url is None:
        raise ValueError("PostgreSQL backend without a database")
    return f"ducklake:{pg_url}?metadata_schema=bench_{uuid.uuid4().hex[:12]}"


def backend_settings(kind: str, home: Path, pg_url: str | None, **overrides: object) -> Settings:
    """Settings of a fresh warehouse of ``kind``; a lake's data files under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    return get_settings(
        home=home,
        warehouse=warehouse_url(kind, home, pg_url),
        warehouse_data_path=str(home.resolve() / "warehouse" / "lake"),
        **overrides,
    )


def backend_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process open the same warehouse."""
    env = dict(os.environ)
    env["CITYPIPE_HOME"] = str(settings.home)
    env["CITYPIPE_WAREHOUSE"] = settings.warehouse or ""
    env["CITYPIPE_WAREHOUSE_DATA_PATH"] = settings.lake_data_path
    return env


def data_bytes(settings: Settings) -> int:
    """Bytes on local disk of the warehouse: the file, or the lake's catalog file + data folder."""
    roots = [settings.warehouse_dir]
    data = settings.lake_data_path
    if settings.warehouse_target.is_lake and not data.startswith("s3://"):
        roots.append(Path(data))
    seen: set[Path] = set()
    total = 0
    for root in roots:
        for p in root.rglob("*") if root.exists() else ():
            if p.is_file() and p not in seen:
                seen.add(p)
                total += p.stat().st_size
    return total
