"""Road traffic KPIs (adopted convention, GB/T 33171-2016 not checked): detector hours with
congestion level and TTI, VKT-weighted TTI and TPI per scope and hour, daily peak-hour TPI."""

from __future__ import annotations

from datetime import date

import duckdb

from transforms.models import DEFAULT_TZ, prepare, run_models

MODELS = (
    "intermediate/int_traffic_detector_hourly",
    "marts/kpi_hourly_traffic",
    "marts/kpi_daily_traffic",
)


def compute_traffic_range(
    con: duckdb.DuckDBPyConnection, start: date, end: date, tz: str = DEFAULT_TZ
) -> None:
    """(Re)build every traffic row of the natural days start..end (idempotent)."""
    prepare(con)
    run_models(con, MODELS, start, end, tz)


def compute_traffic_day(con: duckdb.DuckDBPyConnection, d: date) -> None:
    compute_traffic_range(con, d, d)
