"""Urban waterlogging KPIs (GB 51222-2017 criterion + adopted alert levels): events per point
from the depth series and daily rollups per district and county."""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from common.settings import Settings, get_settings
from transforms import SQL
from transforms.prepare import prepare, run_models

MODELS = ("marts/waterlogging_events", "marts/waterlogging_daily")


def compute_waterlogging_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    extend: bool = True,
    prepared: bool = False,
) -> None:
    """(Re)build the events starting on start..end and the daily rollups of those days.
    Waterlogging rows carry no status and no period values: ``as_of`` and ``extend`` are not
    used."""
    settings = settings or get_settings()
    if not prepared:
        prepare(con, settings)
    run_models(con, MODELS, start, end, settings.timezone)


def ongoing_event_days(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[date]:
    """Days with an event still open when last computed: recompute them to close it."""
    params = {"since": since, "until": until}
    rows = SQL.run(con, "queries/select_open_event_days.sql", params).fetchall()
    return [r[0] for r in rows]
