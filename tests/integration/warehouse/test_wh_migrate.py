"""Migrations: apply once, idempotent, immutable once applied, every table documented."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from common.migrate import MigrationError, discover, migrate
from common.settings import Settings
from warehouse import MIGRATIONS_DIR, db


def test_migrate_is_idempotent(settings: Settings) -> None:
    with db.writer(settings, migrate=False) as con:
        first = migrate(con, MIGRATIONS_DIR)
        assert first == [m.version for m in discover(MIGRATIONS_DIR)]
        tables_before = con.execute("select count(*) from duckdb_tables()").fetchone()
        assert migrate(con, MIGRATIONS_DIR) == []
        assert con.execute("select count(*) from duckdb_tables()").fetchone() == tables_before
        applied = con.execute("select count(*) from meta.schema_migrations").fetchone()
        assert applied == (len(first),)


def test_every_table_comment_starts_one_row_per(settings: Settings) -> None:
    with db.writer(settings) as con:
        rows = con.execute(
            "select schema_name, table_name, comment from duckdb_tables() "
            "where schema_name in ('staging', 'core', 'dq', 'meta')"
        ).fetchall()
    assert len(rows) >= 13
    for schema, table, comment in rows:
        assert (comment or "").startswith("one row per"), f"{schema}.{table}: {comment!r}"


def test_changed_applied_migration_is_refused(tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mig)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con, mig)
    (mig / "0001_schemas.sql").write_text("create schema if not exists other;\n")
    with pytest.raises(MigrationError):
        migrate(con, mig)


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mig)
    (mig / "9999_broken.sql").write_text("create table core.half (a int);\nselect * from nope;\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(duckdb.Error):
        migrate(con, mig)
    assert con.execute(
        "select count(*) from duckdb_tables() where table_name = 'half'"
    ).fetchone() == (0,)
    assert con.execute("select max(version) from meta.schema_migrations").fetchone()[0] < 9999


def test_connections_run_in_utc(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    with db.writer(settings) as con:
        assert con.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)


def test_exclusive_lock_is_exclusive(settings: Settings) -> None:
    # flock is per open file description: a second open in this process also conflicts.
    with (
        db.exclusive_lock(settings),
        pytest.raises(TimeoutError),
        db.exclusive_lock(settings, timeout_s=0.3),
    ):
        pass
    with db.exclusive_lock(settings, timeout_s=0.3):
        pass
