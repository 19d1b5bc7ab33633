"""Water-quality KPIs (GB 3838-2002; 地表水环境质量评价办法 2011): item and section classes per
day / month-to-date / year-to-date, county shares and drinking-water source compliance."""

from __future__ import annotations

from datetime import date

import duckdb

from transforms.models import prepare, run_models, transaction

DAILY_MODELS = (
    "intermediate/int_water_item_daily",
    "intermediate/int_water_site_daily",
)
# Period models: a changed day also changes the month- and year-to-date rows of later days.
PERIOD_MODELS = (
    "marts/kpi_period_water_item",
    "marts/kpi_period_water_section",
    "marts/kpi_daily_water",
)


def compute_water_range(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, extend: bool = True
) -> None:
    """(Re)build every water row for the natural days start..end (idempotent).

    Month- and year-to-date values of a day read the daily sums of the earlier days of the
    year from ``int.int_water_item_daily``, which earlier runs keep. The period rows are rebuilt
    up to the last already computed day of ``end``'s year, which a change before it affects
    (``extend=False`` skips that when the caller computes those days next anyway).
    """
    prepare(con)
    with transaction(con):
        run_models(con, DAILY_MODELS, start, end)
        run_models(con, PERIOD_MODELS, start, period_end(con, end) if extend else end)


def period_end(con: duckdb.DuckDBPyConnection, end: date) -> date:
    last = con.execute(
        "select max(as_of_date) from kpi.kpi_period_water_section where year(as_of_date) = ?",
        [end.year],
    ).fetchone()[0]  # type: ignore[index]
    return max(end, last) if last else end


def compute_water_day(con: duckdb.DuckDBPyConnection, d: date) -> None:
    compute_water_range(con, d, d)
