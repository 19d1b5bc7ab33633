"""Road traffic KPIs (adopted convention, GB/T 33171-2016 not checked): detector hours with
congestion level and TTI, VKT-weighted TTI and TPI per scope and hour, daily peak-hour TPI."""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from common.settings import Settings, get_settings
from transforms.prepare import prepare, run_models

MODELS = (
    "intermediate/traffic_hourly_detector",
    "marts/traffic_hourly",
    "marts/traffic_daily",
)


def compute_traffic_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    extend: bool = True,
    prepared: bool = False,
) -> None:
    """(Re)build every traffic row of the natural days start..end (idempotent). Traffic rows
    carry no status and no period values: ``as_of`` and ``extend`` are not used."""
    settings = settings or get_settings()
    if not prepared:
        prepare(con, settings)
    run_models(con, MODELS, start, end, settings.timezone)
