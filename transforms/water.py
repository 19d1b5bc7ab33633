"""Water-quality KPIs (GB 3838-2002; 地表水环境质量评价办法 2011): item and section classes per
day / month-to-date / year-to-date, county shares and drinking-water source compliance."""

from __future__ import annotations

from datetime import date

import duckdb

from transforms.models import prepare, run_models

MODELS = (
    "intermediate/int_water_item_daily",
    "intermediate/int_water_site_daily",
    "marts/kpi_period_water_item",
    "marts/kpi_period_water_section",
    "marts/kpi_daily_water",
)


def compute_water_range(con: duckdb.DuckDBPyConnection, start: date, end: date) -> None:
    """(Re)build every water row for the natural days start..end (idempotent).

    Month- and year-to-date values of a day read the daily sums of the earlier days of the
    year from ``int.int_water_item_daily``, which earlier runs keep.
    """
    prepare(con)
    run_models(con, MODELS, start, end)


def compute_water_day(con: duckdb.DuckDBPyConnection, d: date) -> None:
    compute_water_range(con, d, d)
