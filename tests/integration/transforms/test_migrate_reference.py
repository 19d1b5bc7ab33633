from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from support import TEST_DATA

from common.migrate import MigrationError, migrate
from transforms import MIGRATIONS_DIR
from transforms.standards import StandardsError, load_standards


def test_kpi_migrations_run_once_and_an_edited_one_is_refused(tmp_path: Path) -> None:
    """One rule for every stage's migrations: applied files are never edited."""
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "0200_a.sql").write_text(
        "create schema if not exists kpi;\ncreate table kpi.a (x integer);\n"
    )
    (mig / "0100_b.sql").write_text(
        'create schema if not exists "int";\ncreate table int.b (x integer);\n'
    )
    con = duckdb.connect()
    assert migrate(con, mig) == [100, 200]
    assert migrate(con, mig) == []
    (mig / "0200_a.sql").write_text("create table if not exists kpi.a (x integer, y integer);\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(con, mig)


def test_load_standards_replaces_and_requires_source(tmp_path: Path) -> None:
    d = tmp_path / "standards"
    d.mkdir()
    (d / "limits.csv").write_text("item,limit_v,source,valid_from\nph,9,GB 3838-2002,2002-06-01\n")
    con = duckdb.connect()
    assert load_standards(con, d) == {"ref.limits": 1}
    (d / "limits.csv").write_text(
        "item,limit_v,source,valid_from\nph,9,GB,2002-06-01\ndo,2,GB,2002-06-01\n"
    )
    assert load_standards(con, d) == {"ref.limits": 2}
    assert con.execute("select typeof(valid_from) from ref.limits limit 1").fetchone() == ("DATE",)
    (d / "bad.csv").write_text("item,v\nx,1\n")
    with pytest.raises(StandardsError, match="source"):
        load_standards(con, d)


OLD_AIR_DDL = TEST_DATA / "transforms" / "0100_air_as_of_502579b.sql"
UNKEYED = ("air_hourly_station", "air_moving_station", "air_iaqi", "air_aqi")


def _primary_keys(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from duckdb_constraints()"
        " where schema_name = 'int' and constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return {r[0] for r in rows}


def test_warehouse_from_the_first_air_ddl_is_brought_up_to_date(tmp_path: Path) -> None:
    """A warehouse made by the first 0100_air.sql (keys on the big hourly int tables, not-null
    good-days target columns): 0110 drops the keys keeping rows, comments and not-nulls."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "0099_kpi_schemas.sql").write_bytes(
        (MIGRATIONS_DIR / "0099_kpi_schemas.sql").read_bytes()
    )
    (old / "0100_air.sql").write_text(OLD_AIR_DDL.read_text(encoding="utf-8"), encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert migrate(con, old) == [99, 100]
    assert set(UNKEYED) <= _primary_keys(con)
    con.execute(
        "insert into int.air_hourly_station values ('WS-AIR-01', '2026-06-10',"
        " '2026-06-10 01:00:00+08', '2026-06-10 01:00', 'HJ633-2012', true,"
        " 12.5, null, null, null, null, null, 60, 0, 0, 0, 0, 0, 60)"
    )

    (old / "0110_air_unkeyed_int.sql").write_bytes(
        (MIGRATIONS_DIR / "0110_air_unkeyed_int.sql").read_bytes()
    )
    assert migrate(con, old) == [110]
    assert _primary_keys(con).isdisjoint(UNKEYED)
    assert con.execute("select site_id, pm25_ugm3 from int.air_hourly_station").fetchall() == [
        ("WS-AIR-01", pytest.approx(12.5))
    ]
    comments = dict(
        con.execute(
            "select table_name, comment from duckdb_tables() where schema_name = 'int'"
        ).fetchall()
    )
    assert all(comments[t].startswith("one row per") for t in UNKEYED)
    with pytest.raises(duckdb.ConstraintException):  # not-null constraints survive the rebuild
        con.execute("insert into int.air_aqi (grain) values ('day')")
    nullable = con.execute(
        "select column_name from duckdb_columns() where table_name = 'kpi_good_days_air'"
        " and is_nullable and column_name in"
        " ('target_pct', 'remaining_nongood_budget_days', 'target_reachable')"
    ).fetchall()
    assert len(nullable) == 3
    # Re-running the file keeps the rows (it is written to be idempotent).
    from common.sql import run_path

    run_path(con, MIGRATIONS_DIR / "0110_air_unkeyed_int.sql")
    assert con.execute("select count(*) from int.air_hourly_station").fetchone() == (1,)


RENAMED = {
    "int.int_traffic_detector_hourly": "int.traffic_hourly_detector",
    "int.int_water_item_daily": "int.water_daily_item",
    "int.int_water_site_daily": "int.water_daily_site",
    "kpi.kpi_daily_air": "kpi.air_daily",
    "kpi.kpi_daily_station_air": "kpi.air_daily_station",
    "kpi.kpi_hourly_air": "kpi.air_hourly",
    "kpi.kpi_good_days_air": "kpi.air_good_days",
    "kpi.kpi_annual_air": "kpi.air_annual",
    "kpi.kpi_daily_water": "kpi.water_daily",
    "kpi.kpi_period_water_item": "kpi.water_period_item",
    "kpi.kpi_period_water_section": "kpi.water_period_section",
    "kpi.kpi_event_waterlogging": "kpi.waterlogging_events",
    "kpi.kpi_daily_waterlogging": "kpi.waterlogging_daily",
    "kpi.kpi_hourly_traffic": "kpi.traffic_hourly",
    "kpi.kpi_daily_traffic": "kpi.traffic_daily",
    "kpi.kpi_values": "kpi.pack_values",
    "kpi.kpi_runs": "kpi.runs",
    "kpi.kpi_restatements": "kpi.restatements",
}


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(
        "select schema_name || '.' || table_name, comment from duckdb_tables()"
        " where schema_name in ('int', 'kpi')"
    ).fetchall()
    return dict(rows)


def test_table_names_migration_keeps_rows_keys_and_comments(tmp_path: Path) -> None:
    """0250 renames the KPI tables of a warehouse made by the earlier migrations, with rows in
    them, to the one pattern; rows, keys and "one row per" comments stay."""
    # The migrations before 0250, then those up to 0250 (later ones add tables of their own).
    old, upto = tmp_path / "old", tmp_path / "upto"
    old.mkdir()
    upto.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number = int(f.name.split("_")[0])
        if number < 250:
            (old / f.name).write_bytes(f.read_bytes())
        if number <= 250:
            (upto / f.name).write_bytes(f.read_bytes())
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    migrate(con, old)
    con.execute(
        "insert into kpi.kpi_values values ('air.aqi', '2026-06-10', 'county', 42, null, 'AQI',"
        " null, 'provisional', 100, null, now())"
    )
    con.execute(
        "insert into kpi.kpi_runs (run_id, reason, start_date, end_date, as_of_date, n_values,"
        " n_restatements, started_at, finished_at)"
        " values ('r', 'test', '2026-06-10', '2026-06-10', '2026-06-11', 1, 0, now(), now())"
    )
    before = _tables(con)
    assert set(RENAMED) <= set(before)
    keys_before = con.execute("select count(*) from duckdb_constraints()").fetchone()
    con.close()

    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert migrate(con, upto) == [250]
    after = _tables(con)
    assert set(after) == {RENAMED.get(t, t) for t in before}
    assert all(c.startswith("one row per") for c in after.values())
    assert "kpi_" not in after["kpi.air_daily_station"]  # its comment named a renamed table
    assert con.execute("select count(*) from duckdb_constraints()").fetchone() == keys_before
    assert con.execute("select kpi_id, value from kpi.pack_values").fetchall() == [("air.aqi", 42)]
    assert con.execute("select run_id from kpi.runs").fetchall() == [("r",)]
    assert migrate(con, upto) == []
