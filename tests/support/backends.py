"""The warehouse backends under test: the DuckDB file, DuckLake on SQLite, DuckLake on PostgreSQL.

A test or module marked ``@pytest.mark.backends("file", "sqlite", "postgres")`` runs once per
backend named; the ``settings`` fixture then points CITYPIPE_WAREHOUSE at a fresh warehouse of
that kind (so subprocesses it starts use it too). Unmarked tests run on
``CITYPIPE_TEST_BACKEND`` (default: the embedded default).

PostgreSQL: the tests create a database of their own (``citypipe_test_<pid>``) on
``CITYPIPE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drop it at
the end; each test gets its own catalog schema in it. Without a server they skip with the
reason, unless CITYPIPE_REQUIRE_POSTGRES=1 (CI sets it): then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

BACKENDS = ("file", "sqlite", "postgres")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*kinds): run the test once per warehouse backend (file, sqlite, postgres)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "warehouse_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None:
        return
    kinds = marker.args or BACKENDS
    unknown = set(kinds) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown backends {unknown}")
    metafunc.parametrize("warehouse_kind", kinds, indirect=True, ids=[f"wh-{k}" for k in kinds])


@pytest.fixture
def warehouse_kind(request: pytest.FixtureRequest) -> str:
    kind = getattr(request, "param", None) or os.environ.get("CITYPIPE_TEST_BACKEND", "default")
    if kind not in (*BACKENDS, "default"):
        raise pytest.UsageError(f"CITYPIPE_TEST_BACKEND={kind!r}: one of {BACKENDS} or default")
    return str(kind)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of the test session's own, created here and dropped at the end;
    yields its URL without scheme-specific parts (``postgres://user@host:port/db``)."""
    import psycopg
    from psycopg.sql import SQL, Identifier  # DDL takes no bound names: quoted

    admin = os.environ.get("CITYPIPE_TEST_PG", DEFAULT_PG)
    name = f"citypipe_test_{os.getpid()}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CITYPIPE_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                f"CITYPIPE_REQUIRE_POSTGRES=1 but PostgreSQL at {admin} is unreachable: {exc}"
            )
        pytest.skip(f"no PostgreSQL at {admin} (set CITYPIPE_TEST_PG; CI requires it): {exc}")
    with conn:
        conn.execute(SQL("drop database if exists {} with (force)").format(Identifier(name)))
        conn.execute(SQL("create database {}").format(Identifier(name)))
    parts = urlsplit(admin)
    netloc = parts.netloc
    try:
        yield f"postgres://{netloc}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(SQL("drop database if exists {} with (force)").format(Identifier(name)))


def warehouse_url_for(kind: str, request: pytest.FixtureRequest) -> str | None:
    """The CITYPIPE_WAREHOUSE value of a fresh warehouse of ``kind`` (None: the default)."""
    if kind in ("default",):
        return None
    if kind == "file":
        return "duckdb:warehouse/citypipe.duckdb"
    if kind == "sqlite":
        return "ducklake:sqlite:warehouse/catalog.sqlite"
    db_url = request.getfixturevalue("pg_database")
    return f"ducklake:{db_url}?metadata_schema=lake_{uuid.uuid4().hex[:12]}"
