"""A lake's data in S3-compatible object storage (moto's server on loopback), credentials only
in settings: the Parquet files land in the bucket, and the catalog never holds the secret."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql
from support.s3_fixtures import S3Bucket
from support.wh_factory import series, write_landing

from common.settings import Settings
from steps.ingest import load_feed, validate_feed
from warehouse import db
from warehouse.ledger import discover_new_files

pytestmark = pytest.mark.backends("sqlite", "postgres")

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 2026-11-21 00:00 in Shanghai

READ_SUM = (
    "from common.settings import get_settings; from warehouse import db\n"
    "with db.reader(get_settings()) as con:\n"
    "    print(con.execute('select count(*), sum(pm25_ugm3) from core.probe').fetchone())\n"
)


def catalog_text(settings: Settings) -> str:
    """Every value the lake's catalog stores, as text: the SQLite catalog's rows (plus the raw
    bytes of its files, WAL included), or every row of the PostgreSQL metadata schema."""
    target = settings.warehouse_target
    if target.kind == "sqlite":
        assert target.path is not None
        raw = b"".join(
            p.read_bytes() for p in target.path.parent.glob(target.path.name + "*") if p.is_file()
        )
        db_ = sqlite3.connect(target.path)
        try:
            dump = "\n".join(db_.iterdump())
        finally:
            db_.close()
        return dump + raw.decode("utf-8", errors="replace")
    schema = target.metadata_schema or "public"
    password = settings.warehouse_password
    dsn = target.pg_dsn(password.get_secret_value() if password else None)
    parts: list[str] = []
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s",
            [schema],
        ).fetchall()
        assert tables, f"no catalog tables in schema {schema}"
        for (table,) in tables:
            query = sql.SQL("select t::text from {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            parts.extend(str(row[0]) for row in conn.execute(query))
    return "\n".join(parts)


def test_a_lake_in_a_bucket_writes_parquet_there_and_keeps_credentials_out_of_the_catalog(
    s3_settings: Settings, s3_bucket: S3Bucket
) -> None:
    assert s3_settings.lake_data_path == f"s3://{s3_bucket.name}/lake/"
    con = db.connect(s3_settings)
    try:
        con.execute("create schema if not exists core")
        con.execute("create table core.probe (site_id varchar, pm25_ugm3 double)")
        con.execute("insert into core.probe select 'site-' || i, i from range(1, 101) r(i)")
        con.execute("insert into core.probe values ('late', 0.5)")
        assert con.execute("select count(*), sum(pm25_ugm3) from core.probe").fetchone() == (
            101,
            5050.5,
        )
    finally:
        con.close()

    keys = s3_bucket.keys("lake/")
    parquet = [k for k in keys if k.endswith(".parquet")]
    # Two commits, two data files (the catalog inlines nothing by default), under the prefix.
    assert len(parquet) >= 2, keys
    assert all(k.startswith("lake/core/probe/") for k in parquet), parquet

    # Another process reads it back from the bucket with the credentials from its environment.
    out = subprocess.run(
        [sys.executable, "-c", READ_SUM], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(101, 5050.5)"

    text = catalog_text(s3_settings)
    # The search finds what the catalog does store (the data path), so a miss means something.
    assert f"s3://{s3_bucket.name}/lake/" in text
    secret = s3_settings.s3_secret_access_key
    assert secret is not None
    assert secret.get_secret_value() not in text
    assert s3_bucket.server.access_key_id not in text


def test_without_credentials_the_bucket_is_not_readable(
    s3_settings: Settings, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret is per connection: a reader without credentials cannot read the data files,
    so nothing in the catalog let it in."""
    con = db.connect(s3_settings)
    try:
        con.execute("create schema if not exists core")
        con.execute("create table core.probe (site_id varchar, pm25_ugm3 double)")
        con.execute("insert into core.probe values ('a', 1.0)")
    finally:
        con.close()
    assert s3_bucket.keys("lake/")
    monkeypatch.setenv("CITYPIPE_S3_SECRET_ACCESS_KEY", "wrong-secret")
    out = subprocess.run(
        [sys.executable, "-c", READ_SUM], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    assert (
        "403" in out.stderr or "Forbidden" in out.stderr or "SignatureDoesNotMatch" in out.stderr
    ), out.stderr[-2000:]


def test_the_load_chain_runs_on_a_lake_in_a_bucket(
    s3_settings: Settings, s3_bucket: S3Bucket
) -> None:
    """Warehouse migrations and a load of landing files, data in object storage."""
    rows = series("air", START, 90)
    rows[5]["pm25_ugm3"] = -1.0  # implausible: flagged, still loaded
    write_landing(s3_settings.home, "air", rows)
    write_landing(s3_settings.home, "traffic", series("traffic", START, 24))
    found = discover_new_files(s3_settings)
    for feed in ("air", "traffic"):
        summary = validate_feed(s3_settings, feed, found[feed], "s3-run")
        load_feed(s3_settings, summary)

    with db.reader(s3_settings) as con:
        assert con.execute("select count(*) from core.obs_air").fetchone() == (90,)
        assert con.execute("select count(*) from core.obs_traffic").fetchone() == (24,)
        flagged = con.execute(
            "select seq, failed_expectations from core.obs_air where failed_expectations <> ''"
        ).fetchall()
        assert flagged == [(6, "pm25_ugm3_in_range")]
        ledger = con.execute("select count(*) from meta.load_ledger").fetchone()
    assert ledger is not None and ledger[0] >= 2

    parquet = [k for k in s3_bucket.keys("lake/") if k.endswith(".parquet")]
    assert any(k.startswith("lake/core/obs_air/") for k in parquet), parquet
    assert any(k.startswith("lake/core/obs_traffic/") for k in parquet), parquet
    assert any(k.startswith("lake/meta/") for k in parquet), parquet
    secret = s3_settings.s3_secret_access_key
    assert secret is not None
    assert secret.get_secret_value() not in catalog_text(s3_settings)

    # A second discovery finds nothing new: the ledger on the lake holds the files.
    again = discover_new_files(s3_settings)
    assert not again["air"] and not again["traffic"]
