"""Which warehouse backend a ``CITYPIPE_WAREHOUSE`` URL names (docs/warehouse.md).

Three backends, one setting:

- ``duckdb:///abs/path.duckdb`` or a bare path ending in ``.duckdb``: one DuckDB file (one writing
  process; readers wait for writers behind the file lock).
- ``ducklake:sqlite:///abs/path/catalog.sqlite``: DuckLake with an embedded SQLite catalog; data
  files under ``CITYPIPE_WAREHOUSE_DATA_PATH``. Several local processes; readers never blocked.
- ``ducklake:postgres://user@host:5432/dbname`` (or ``ducklake:postgres:dbname=x host=y`` in
  libpq's key/value form): DuckLake with a PostgreSQL catalog; data in a folder or an
  ``s3://bucket/prefix/``. Many readers and writers, on many machines.

The password of the PostgreSQL catalog never sits in the URL: it comes from
``CITYPIPE_WAREHOUSE_PASSWORD`` or ``*_FILE`` (a URL lands in logs and process lists).
This module only parses; ``warehouse.db`` opens connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Kind = Literal["file", "sqlite", "postgres"]

# libpq key/value pairs we pass through from a URL's query string (others are refused, so a typo
# is not silently ignored).
_PG_QUERY_KEYS = {"sslmode", "connect_timeout", "application_name", "options"}


class WarehouseUrlError(ValueError):
    """CITYPIPE_WAREHOUSE does not name a backend we know; the message says the accepted forms."""


_FORMS = (
    "accepted: duckdb:///abs/path.duckdb (or a path ending in .duckdb), "
    "ducklake:sqlite:///abs/path/catalog.sqlite, ducklake:postgres://user@host:5432/dbname"
    " (optionally ?metadata_schema=name), ducklake:postgres:dbname=x host=y user=z"
)


@dataclass(frozen=True)
class WarehouseTarget:
    """A parsed warehouse location. ``path``: the DuckDB file or the SQLite catalog;
    ``pg_params``: libpq key/value pairs without the password; ``metadata_schema``: the catalog's
    schema in PostgreSQL (several lakes in one database)."""

    kind: Kind
    path: Path | None = None
    pg_params: tuple[tuple[str, str], ...] = ()
    metadata_schema: str | None = None

    @property
    def is_lake(self) -> bool:
        return self.kind != "file"

    def pg_dsn(self, password: str | None = None) -> str:
        """The libpq key/value DSN (with the password only when given: never log the result)."""
        pairs = list(self.pg_params)
        if password:
            pairs.append(("password", password))
        return " ".join(f"{k}={_pg_quote(v)}" for k, v in pairs)

    def describe(self) -> str:
        """For logs and messages: never a secret."""
        if self.kind == "file":
            return f"DuckDB file {self.path}"
        if self.kind == "sqlite":
            return f"DuckLake, SQLite catalog {self.path}"
        schema = f", schema {self.metadata_schema}" if self.metadata_schema else ""
        return f"DuckLake, PostgreSQL catalog {self.pg_dsn()}{schema}"


def _pg_quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_warehouse_url(url: str, *, base: Path) -> WarehouseTarget:
    """Parse ``url``; a relative path is taken under ``base`` (the data folder)."""
    text = url.strip()
    if not text:
        raise WarehouseUrlError(f"CITYPIPE_WAREHOUSE is empty; {_FORMS}")
    if text.startswith("ducklake:sqlite:"):
        return WarehouseTarget("sqlite", path=_path(text.removeprefix("ducklake:sqlite:"), base))
    for prefix in ("ducklake:postgres:", "ducklake:postgresql:"):
        if text.startswith(prefix):
            return _postgres(text.removeprefix(prefix))
    if text.startswith("ducklake:"):
        raise WarehouseUrlError(f"unknown DuckLake catalog in CITYPIPE_WAREHOUSE={url!r}; {_FORMS}")
    if text.startswith("duckdb:"):
        return WarehouseTarget("file", path=_path(text.removeprefix("duckdb:"), base))
    if "://" not in text and text.endswith(".duckdb"):
        return WarehouseTarget("file", path=_path(text, base))
    raise WarehouseUrlError(f"CITYPIPE_WAREHOUSE={url!r} names no known backend; {_FORMS}")


def _path(rest: str, base: Path) -> Path:
    # "///abs" (URL form) and "/abs" both mean an absolute path; "rel" is under the data folder.
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise WarehouseUrlError(f"a host is not allowed in a file URL ({rest!r}); {_FORMS}")
    if not rest:
        raise WarehouseUrlError(f"the URL names no file; {_FORMS}")
    p = Path(unquote(rest))
    return p if p.is_absolute() else base / p


def _postgres(rest: str) -> WarehouseTarget:
    if rest.startswith("//"):
        parts = urlsplit("postgresql:" + rest)
        if parts.password is not None:
            raise WarehouseUrlError(
                "put the catalog's password in CITYPIPE_WAREHOUSE_PASSWORD or"
                " CITYPIPE_WAREHOUSE_PASSWORD_FILE, not in the URL (URLs end up in logs)"
            )
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise WarehouseUrlError(f"the PostgreSQL URL names no database; {_FORMS}")
        params: list[tuple[str, str]] = [("dbname", dbname)]
        if parts.hostname:
            params.append(("host", parts.hostname))
        if parts.port:
            params.append(("port", str(parts.port)))
        if parts.username:
            params.append(("user", unquote(parts.username)))
        schema = None
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            if key == "metadata_schema":
                schema = values[-1]
            elif key in _PG_QUERY_KEYS:
                params.append((key, values[-1]))
            else:
                raise WarehouseUrlError(f"unknown parameter {key!r} in the PostgreSQL URL")
        return WarehouseTarget("postgres", pg_params=tuple(params), metadata_schema=schema)
    pairs: list[tuple[str, str]] = []
    schema = None
    for token in rest.split():
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise WarehouseUrlError(f"{token!r} is not key=value; {_FORMS}")
        if key == "password":
            raise WarehouseUrlError(
                "put the catalog's password in CITYPIPE_WAREHOUSE_PASSWORD or"
                " CITYPIPE_WAREHOUSE_PASSWORD_FILE, not in the URL (URLs end up in logs)"
            )
        if key == "metadata_schema":
            schema = value
        else:
            pairs.append((key, value))
    if not any(k == "dbname" for k, _ in pairs):
        raise WarehouseUrlError(f"the PostgreSQL DSN names no dbname; {_FORMS}")
    return WarehouseTarget("postgres", pg_params=tuple(pairs), metadata_schema=schema)
