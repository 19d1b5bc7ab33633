"""Helpers for the air KPI tests: fast columnar insert of readings into core.obs_air, and a way to
run only the IAQI/AQI models on county concentrations written straight into int.air_daily_county
(for the property tests, which need thousands of AQIs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import duckdb
import pyarrow as pa

from common.settings import get_settings
from support.air_reference_impl import COLUMN, CST, POLLUTANTS, Reading
from transforms import SQL
from transforms.air import MACROS, RULE_SETS_MODEL
from transforms.prepare import prepare

ASSESSMENT = ("WS-AIR-01", "WS-AIR-02", "WS-AIR-03", "WS-AIR-04")
MICRO = tuple(f"WS-AIR-M0{i}" for i in range(1, 9))
SITES = {s: True for s in ASSESSMENT} | {s: False for s in MICRO}
AS_OF = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=CST)


def insert_readings(con: duckdb.DuckDBPyConnection, readings: Iterable[Reading]) -> int:
    rs = list(readings)
    if not rs:
        return 0
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cols: dict[str, pa.Array] = {
        "site_id": pa.array([r.site_id for r in rs], pa.string()),
        "device_id": pa.array([r.site_id + "-D" for r in rs], pa.string()),
        "observed_at": pa.array([r.observed_at for r in rs], pa.timestamp("us", tz="UTC")),
        "local_date": pa.array([r.observed_at.astimezone(CST).date() for r in rs], pa.date32()),
        "period_s": pa.array([r.period_s for r in rs], pa.int32()),
        "seq": pa.array(range(len(rs)), pa.int64()),
        "flags": pa.array(["" if r.is_valid else "maintenance" for r in rs], pa.string()),
        "is_valid": pa.array([r.is_valid for r in rs], pa.bool_()),
        "failed_expectations": pa.array(
            ["" if r.is_valid else "device_flag:maintenance" for r in rs], pa.string()
        ),
        "received_at": pa.array([t0] * len(rs), pa.timestamp("us", tz="UTC")),
        "content_hash": pa.array(["h"] * len(rs), pa.string()),
        "source_file": pa.array(["test"] * len(rs), pa.string()),
        "validation_run_id": pa.array(["test"] * len(rs), pa.string()),
        "loaded_at": pa.array([t0] * len(rs), pa.timestamp("us", tz="UTC")),
    }
    for p in POLLUTANTS:
        cols[COLUMN[p]] = pa.array([r.values.get(p) for r in rs], pa.float64())
    tbl = pa.table(cols)
    con.register("new_air_rows", tbl)
    try:
        con.execute("insert into core.obs_air by name select * from new_air_rows")
    finally:
        con.unregister("new_air_rows")
    return len(rs)


def hourly_constant(
    site: str, first_hour_end: datetime, hours: int, values: Mapping[str, float | None]
) -> list[Reading]:
    """Hourly readings (period 3600, observed_at = end of the hour) with constant values."""
    return [
        Reading(site, first_hour_end + timedelta(hours=i), 3600, dict(values)) for i in range(hours)
    ]


def to_dec(x: Fraction | None) -> Decimal | None:
    if x is None:
        return None
    return Decimal(x.numerator) / Decimal(x.denominator)


COUNTY_INPUTS = ("pm25", "pm10", "so2", "no2", "co", "o3_8h", "o3_1h")


def aqi_for_county_days(
    con: duckdb.DuckDBPyConnection, days: Mapping[date, Mapping[str, Decimal | None]]
) -> dict[date, dict[str, object]]:
    """Write county concentrations straight into int.air_daily_county and run the production
    IAQI and AQI models (air_iaqi, air_aqi) over them."""
    prepare(con, get_settings())
    SQL.run(con, MACROS)
    SQL.run(con, RULE_SETS_MODEL)
    con.execute("delete from int.air_daily_county")
    con.execute("delete from int.air_iaqi")
    con.execute("delete from int.air_aqi")
    rows = []
    for d, c in days.items():
        rs = "HJ633-2026" if d >= date(2026, 3, 1) else "HJ633-2012"
        rows.append((d, rs, 4, 3, *[c.get(k) for k in COUNTY_INPUTS], 4, 4, 4, 4, 4, 4, 4, 100.0))
    con.executemany(
        "insert into int.air_daily_county values "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    params = {"start_date": min(days), "end_date": max(days), "tz": "Asia/Shanghai"}
    for model in ("intermediate/air_iaqi", "intermediate/air_aqi"):
        SQL.run(con, SQL.root / f"{model}.sql", params)
    out: dict[date, dict[str, object]] = {}
    for r in con.execute(
        "select local_date, aqi, primary_pollutants, aqi_level, category_zh, is_good,"
        " excluded_missing_pollutant, iaqi_so2, iaqi_no2, iaqi_pm10, iaqi_co, iaqi_o3_1h,"
        " iaqi_o3_8h, iaqi_pm25 from int.air_aqi where grain = 'day' and scope = 'county'"
    ).fetchall():
        out[r[0]] = {
            "aqi": r[1],
            "primary": r[2],
            "level": r[3],
            "category_zh": r[4],
            "is_good": r[5],
            "excluded": r[6],
            "SO2": r[7],
            "NO2": r[8],
            "PM10": r[9],
            "CO": r[10],
            "O3_1h": r[11],
            "O3_8h": r[12],
            "PM2.5": r[13],
        }
    return out
