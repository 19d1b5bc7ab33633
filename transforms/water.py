"""Water-quality KPIs (GB 3838-2002; 地表水环境质量评价办法 2011): item and section classes per
day / month-to-date / year-to-date, county shares and drinking-water source compliance."""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from common.settings import Settings, get_settings
from common.sql import transaction
from transforms import scalar
from transforms.prepare import prepare, run_models

DAILY_MODELS = (
    "intermediate/water_daily_item",
    "intermediate/water_daily_site",
)
# Period models: a changed day also changes the month- and year-to-date rows of later days.
PERIOD_MODELS = (
    "marts/water_period_item",
    "marts/water_period_section",
    "marts/water_daily",
)


def compute_water_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    extend: bool = True,
    prepared: bool = False,
) -> None:
    """(Re)build every water row for the natural days start..end (idempotent).

    Month- and year-to-date values of a day read the daily sums of the earlier days of the
    year from ``int.water_daily_item``, which earlier runs keep. The period rows are rebuilt
    up to the last already computed day of ``end``'s year, which a change before it affects
    (``extend=False`` skips that when the caller computes those days next anyway). Water rows
    carry no status, so ``as_of`` is not used.
    """
    settings = settings or get_settings()
    if not prepared:
        prepare(con, settings)
    with transaction(con):
        run_models(con, DAILY_MODELS, start, end, settings.timezone)
        period_last = _period_end(con, end) if extend else end
        run_models(con, PERIOD_MODELS, start, period_last, settings.timezone)


def _period_end(con: duckdb.DuckDBPyConnection, end: date) -> date:
    last: date | None = scalar(con, "queries/select_water_period_end.sql", {"year": end.year})
    return max(end, last) if last else end
