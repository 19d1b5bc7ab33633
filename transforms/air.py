"""Air-quality KPIs exactly as HJ 633 (2012 and 2026 rule sets), GB 3095 and HJ 663 define them.

Every number is computed in SQL (``transforms/sql/intermediate/air_*.sql`` then
``transforms/sql/marts/air_*.sql``) from ``core.obs_air`` and the reference data under
``reference/standards/aqi_*.csv``; docs/kpis_air.md explains each KPI and convention.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb

from common.settings import Settings, get_settings
from common.sql import transaction
from transforms import SQL, scalar
from transforms.prepare import prepare

MACROS = "intermediate/air_macros.sql"
RULE_SETS_MODEL = "intermediate/air_rule_sets.sql"

# Day-partitioned models, in dependency order; each reads only tables built before it.
DAILY_MODELS: tuple[str, ...] = (
    "intermediate/air_hourly_station",
    "intermediate/air_moving_station",
    "intermediate/air_daily_station",
    "intermediate/air_daily_county",
    "intermediate/air_hourly_county",
    "intermediate/air_iaqi",
    "intermediate/air_aqi",
    "marts/air_daily",
    "marts/air_daily_station",
    "marts/air_hourly",
)
# Year-to-date models: a changed day also changes every later day of its year.
CUMULATIVE_MODELS: tuple[str, ...] = (
    "marts/air_good_days",
    "marts/air_annual",
)


def natural_day_timezone(con: duckdb.DuckDBPyConnection) -> str:
    """The zone days are cut in (GB 3095: China Standard Time), from ref.aqi_rules."""
    rows = SQL.run(con, "queries/select_air_rule_timezones.sql").fetchall()
    zones: set[str] = {r[0] for r in rows}
    if len(zones) != 1:
        raise ValueError(f"aqi_rules: expected one natural_day_timezone, got {sorted(zones)}")
    return zones.pop()


def compute_air_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    extend: bool = True,
    prepared: bool = False,
) -> None:
    """(Re)build every air intermediate and mart row for the natural days start..end (idempotent).

    The hourly means of ``start - 1`` are rebuilt too (the 8h and 24h moving windows of the first
    hours of ``start`` need them), and the day after ``end`` is recomputed when it was computed
    before (its first 8h / 24h windows read ``end``'s last hours). Year-to-date rows (good-days
    ratio, annual statistics) are rebuilt from ``start`` up to the last computed day of that
    year, since a changed day changes every later day's year-to-date value (always: ``extend``
    is not used). ``as_of`` (default: now) decides the provisional/final status. Days are cut in
    the zone of the air rules (``natural_day_timezone``, GB 3095), not in ``settings.timezone``.
    """
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    if not prepared:
        prepare(con, settings or get_settings())
    SQL.run(con, MACROS)
    computed_at = datetime.now().astimezone()
    as_of = as_of or computed_at
    with transaction(con):
        SQL.run(con, RULE_SETS_MODEL)
        tz = natural_day_timezone(con)
        as_of_date = scalar(con, "queries/select_local_date.sql", {"tz": tz, "t": as_of})
        # The 8h and 24h windows of the first hours of end + 1 read end's last hours: a day
        # already computed after the range is recomputed with it.
        after = end + timedelta(days=1)
        has_after = scalar(con, "queries/count_air_days.sql", {"d": after})
        last_day: date = after if has_after else end
        params: dict[str, object] = {
            "start_date": start,
            "end_date": last_day,
            "tz": tz,
            "as_of_date": as_of_date,
            "computed_at": computed_at,
        }
        for model in DAILY_MODELS:
            SQL.run(con, f"{model}.sql", params)
        last = scalar(con, "queries/select_last_air_day.sql", {"year": last_day.year})
        params["cum_end_date"] = max(last_day, last or end)
        for model in CUMULATIVE_MODELS:
            SQL.run(con, f"{model}.sql", params)
