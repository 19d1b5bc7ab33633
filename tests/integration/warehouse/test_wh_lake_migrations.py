"""Every warehouse and KPI migration runs on each backend, to the same schema.

A lake runs a migration's ``.lake.sql`` variant where DuckLake rejects the plain file (keys,
checks, list defaults); the end state must still have the tables, columns, types and
nullability of a single-file warehouse. Two migrators racing on an empty lake apply each
migration once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from common.migrate import discover, is_lake, migrate
from common.settings import Settings
from transforms import MIGRATIONS_DIR as KPI_MIGRATIONS
from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS
from warehouse import db

ALL = [*discover(WAREHOUSE_MIGRATIONS), *discover(KPI_MIGRATIONS)]

# Columns of every table and view of the default database (the runner's two tables included).
COLUMNS = """
select table_schema, table_name, ordinal_position, column_name, data_type, is_nullable
from information_schema.columns
where table_catalog = current_database()
order by all
"""
RELATIONS = """
select schema_name, table_name, 'table', comment from duckdb_tables()
where database_name = current_database()
union all
select schema_name, view_name, 'view', comment from duckdb_views()
where database_name = current_database() and not internal
order by all
"""


def _migrate_both(con: duckdb.DuckDBPyConnection) -> list[int]:
    return migrate(con, WAREHOUSE_MIGRATIONS) + migrate(con, KPI_MIGRATIONS)


def _schema(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple], list[tuple]]:
    return con.execute(COLUMNS).fetchall(), con.execute(RELATIONS).fetchall()


def _snapshots(con: duckdb.DuckDBPyConnection) -> int | None:
    if not is_lake(con):
        return None
    return int(con.execute("select count(*) from lake.snapshots()").fetchone()[0])


@pytest.mark.backends("file", "sqlite", "postgres")
def test_every_migration_applies_once_from_empty(settings: Settings, warehouse_kind: str) -> None:
    lake = warehouse_kind != "file"
    with db.writer(settings, migrate=False) as con:
        assert is_lake(con) == lake
        assert _migrate_both(con) == [m.version for m in ALL]
        ledger = con.execute(
            "select version, name, checksum from meta.schema_migrations order by version"
        ).fetchall()
        assert ledger == [(m.version, m.name, m.checksum_for(lake)) for m in ALL]
        # A lake ran the variants: its ledger records their checksums, not the plain files'.
        variants = [m for m in ALL if m.lake_path is not None]
        assert variants
        assert all((m.checksum_for(lake) != m.checksum) == lake for m in variants)
        assert con.execute(
            "select migrations_applied from meta.schema_migration_claim"
        ).fetchall() == [(len(ALL),)]

        before = _schema(con), _snapshots(con)
        assert _migrate_both(con) == []
        # A re-run writes nothing: on a lake not even a snapshot (it would race other writers).
        assert (_schema(con), _snapshots(con)) == before
    # The factory's writer migrates too, and finds nothing to do.
    with db.writer(settings) as con:
        assert len(con.execute("select * from meta.schema_migrations").fetchall()) == len(ALL)


@pytest.mark.backends("sqlite", "postgres")
def test_a_lake_has_the_schema_of_a_file_warehouse(settings: Settings, tmp_path: Path) -> None:
    file_con = duckdb.connect(str(tmp_path / "reference.duckdb"))
    try:
        _migrate_both(file_con)
        expected_columns, expected_relations = _schema(file_con)
    finally:
        file_con.close()
    with db.writer(settings, migrate=False) as con:
        _migrate_both(con)
        columns, relations = _schema(con)
    assert len(expected_columns) > 500  # the comparison compares something
    assert [c for c in columns if c not in expected_columns] == []
    assert [c for c in expected_columns if c not in columns] == []
    assert relations == expected_relations


MIGRATE_PROCESS = """
import sys, time
from common.migrate import migrate
from common.settings import get_settings
from transforms import MIGRATIONS_DIR
from warehouse import db

go = float(sys.argv[1])
time.sleep(max(0.0, go - time.time()))
settings = get_settings()
with db.writer(settings) as con:  # applies the warehouse migrations, retried on conflict
    db.retrying(settings, lambda: migrate(con, MIGRATIONS_DIR), what="kpi migrations")
print("done")
"""


@pytest.mark.backends("sqlite", "postgres")
def test_two_migrators_on_an_empty_lake_apply_each_migration_once(settings: Settings) -> None:
    # Both processes start their migrations at the same moment (after their imports).
    go = time.time() + 8
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_PROCESS, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert out.strip().endswith("done")
    with db.reader(settings) as con:
        versions = [
            r[0]
            for r in con.execute("select version from meta.schema_migrations order by 1").fetchall()
        ]
        claims = con.execute(
            "select migrations_applied from meta.schema_migration_claim"
        ).fetchall()
        tables = con.execute(
            "select count(*) from duckdb_tables() where database_name = current_database()"
        ).fetchone()
    assert versions == [m.version for m in ALL]
    assert claims == [(len(ALL),)]
    # 42 tables of the two stages plus the runner's ledger and claim.
    assert tables is not None and tables[0] >= 44


@pytest.mark.backends("sqlite")
def test_no_lake_column_is_hugeint(settings: Settings) -> None:
    # DuckLake writes HUGEINT as DOUBLE to Parquet: 17 digits survive, the rest silently do not
    # (docs/research/ducklake_2026-12.md). Hugeint stays inside expressions (the air macros).
    from transforms.prepare import prepare

    with db.writer(settings) as con:
        prepare(con, settings)  # the KPI migrations and the ref tables from the standards CSVs
        types = dict(
            con.execute(
                "select schema_name || '.' || table_name || '.' || column_name, data_type"
                " from duckdb_columns() where database_name = current_database()"
            ).fetchall()
        )
    assert any(c.startswith("ref.") for c in types)
    assert {c: t for c, t in types.items() if "HUGEINT" in t} == {}
