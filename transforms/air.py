"""Air-quality KPIs exactly as HJ 633 (2012 and 2026 rule sets), GB 3095 and HJ 663 define them.

Every number is computed in SQL (``transforms/sql/intermediate/int_air_*.sql`` then
``transforms/sql/marts/kpi_*_air.sql``) from ``core.obs_air`` and the reference data under
``reference/standards/aqi_*.csv``; docs/kpis_air.md explains each KPI and convention.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from transforms import SQL
from transforms.models import prepare, transaction

MACROS = SQL.root / "intermediate" / "air_macros.sql"
RULE_SETS_MODEL = SQL.root / "intermediate" / "int_air_rule_sets.sql"

# Day-partitioned models, in dependency order; each reads only tables built before it.
DAILY_MODELS: tuple[str, ...] = (
    "intermediate/int_air_hourly_station",
    "intermediate/int_air_moving_station",
    "intermediate/int_air_daily_station",
    "intermediate/int_air_daily_county",
    "intermediate/int_air_hourly_county",
    "intermediate/int_air_iaqi",
    "intermediate/int_air_aqi",
    "marts/kpi_daily_air",
    "marts/kpi_daily_station_air",
    "marts/kpi_hourly_air",
)
# Year-to-date models: a changed day also changes every later day of its year.
CUMULATIVE_MODELS: tuple[str, ...] = (
    "marts/kpi_good_days_air",
    "marts/kpi_annual_air",
)


def _path(model: str) -> Path:
    return SQL.root / f"{model}.sql"


def natural_day_timezone(con: duckdb.DuckDBPyConnection) -> str:
    """The zone days are cut in (GB 3095: China Standard Time), from ref.aqi_rules."""
    zones = {
        r[0] for r in con.execute("select natural_day_timezone from int.air_rule_sets").fetchall()
    }
    if len(zones) != 1:
        raise ValueError(f"aqi_rules: expected one natural_day_timezone, got {sorted(zones)}")
    return zones.pop()


def compute_air_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    as_of: datetime | None = None,
) -> None:
    """(Re)build every air intermediate and mart row for the natural days start..end (idempotent).

    The hourly means of ``start - 1`` are rebuilt too (the 8h and 24h moving windows of the first
    hours of ``start`` need them), and the day after ``end`` is recomputed when it was computed
    before (its first 8h / 24h windows read ``end``'s last hours). Year-to-date rows (good-days
    ratio, annual statistics) are rebuilt from ``start`` up to the last computed day of that
    year, since a changed day changes every later day's year-to-date value. ``as_of`` (default: now) decides the
    provisional/final status.
    """
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    prepare(con)
    SQL.run(con, MACROS)
    computed_at = datetime.now().astimezone()
    as_of = as_of or computed_at
    with transaction(con):
        SQL.run(con, RULE_SETS_MODEL)
        tz = natural_day_timezone(con)
        as_of_date = con.execute(
            "select timezone($tz, $t::timestamptz)::date", {"tz": tz, "t": as_of}
        ).fetchone()[0]  # type: ignore[index]
        # The 8h and 24h windows of the first hours of end + 1 read end's last hours: a day
        # already computed after the range is recomputed with it.
        after = end + timedelta(days=1)
        has_after = con.execute(
            "select count(*) from kpi.kpi_daily_air where local_date = $d", {"d": after}
        ).fetchone()[0]  # type: ignore[index]
        params = {
            "start_date": start,
            "end_date": after if has_after else end,
            "tz": tz,
            "as_of_date": as_of_date,
            "computed_at": computed_at,
        }
        for model in DAILY_MODELS:
            SQL.run(con, _path(model), params)
        last = con.execute(
            "select max(local_date) from kpi.kpi_daily_air where year(local_date) = $y",
            {"y": params["end_date"].year},  # type: ignore[attr-defined]
        ).fetchone()[0]  # type: ignore[index]
        params["cum_end_date"] = max(params["end_date"], last or end)
        for model in CUMULATIVE_MODELS:
            SQL.run(con, _path(model), params)


def compute_air_day(
    con: duckdb.DuckDBPyConnection, d: date, *, as_of: datetime | None = None
) -> None:
    """Recompute one natural day (and the year-to-date rows after it)."""
    compute_air_range(con, d, d, as_of=as_of)
