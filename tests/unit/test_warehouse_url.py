"""CITYPIPE_WAREHOUSE: which backend a URL names, and what is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings
from common.warehouse_url import WarehouseUrlError, parse_warehouse_url

BASE = Path("/srv/citypipe")


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("duckdb:///data/wh.duckdb", "file", "/data/wh.duckdb"),
        ("duckdb:warehouse/wh.duckdb", "file", "/srv/citypipe/warehouse/wh.duckdb"),
        ("/data/wh.duckdb", "file", "/data/wh.duckdb"),
        ("ducklake:sqlite:///data/cat.sqlite", "sqlite", "/data/cat.sqlite"),
        ("ducklake:sqlite:/data/cat.sqlite", "sqlite", "/data/cat.sqlite"),
        ("ducklake:sqlite:warehouse/cat.sqlite", "sqlite", "/srv/citypipe/warehouse/cat.sqlite"),
    ],
)
def test_local_backends(url: str, kind: str, path: str) -> None:
    target = parse_warehouse_url(url, base=BASE)
    assert (target.kind, target.path) == (kind, Path(path))
    assert target.is_lake == (kind != "file")


def test_postgres_url_becomes_a_libpq_dsn_without_password() -> None:
    target = parse_warehouse_url(
        "ducklake:postgres://citypipe@db.example:5433/lake?metadata_schema=wushan&sslmode=require",
        base=BASE,
    )
    assert target.kind == "postgres"
    assert target.metadata_schema == "wushan"
    assert target.pg_dsn() == "dbname=lake host=db.example port=5433 user=citypipe sslmode=require"
    assert target.pg_dsn("s3cr'et x").endswith(r"password='s3cr\'et x'")
    assert "s3cr" not in target.describe()


def test_postgres_key_value_dsn() -> None:
    target = parse_warehouse_url("ducklake:postgres:dbname=lake host=127.0.0.1 user=x", base=BASE)
    assert target.pg_dsn() == "dbname=lake host=127.0.0.1 user=x"
    assert target.metadata_schema is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ducklake:postgres://u:pw@h/db", "CITYPIPE_WAREHOUSE_PASSWORD"),
        ("ducklake:postgres:dbname=db password=pw", "CITYPIPE_WAREHOUSE_PASSWORD"),
        ("ducklake:postgres://u@h/", "names no database"),
        ("ducklake:postgres:host=h", "names no dbname"),
        ("ducklake:postgres://u@h/db?sslmod=x", "unknown parameter 'sslmod'"),
        ("ducklake:mysql://h/db", "unknown DuckLake catalog"),
        ("s3://bucket/x.duckdb", "names no known backend"),
        ("warehouse.sqlite", "names no known backend"),
        ("duckdb://host/x.duckdb", "a host is not allowed"),
        ("", "is empty"),
    ],
)
def test_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(WarehouseUrlError, match=reason):
        parse_warehouse_url(url, base=BASE)


def test_settings_default_and_secrets(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.warehouse_target.kind == "file"
    assert s.warehouse_path == tmp_path / "warehouse" / "citypipe.duckdb"
    assert s.lake_data_path == f"{tmp_path}/warehouse/lake/"
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    s = Settings(
        home=tmp_path,
        warehouse="ducklake:postgres://citypipe@127.0.0.1/lake",
        warehouse_password_file=secret,
        warehouse_data_path="s3://bucket/prefix",
    )
    assert s.warehouse_password is not None
    assert s.warehouse_password.get_secret_value() == "from-a-file"
    assert s.lake_data_path == "s3://bucket/prefix/"
    assert "from-a-file" not in repr(s)
