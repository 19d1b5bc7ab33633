"""Provisional intra-day values (issue 11 item 2): today, not tomorrow.

The daily KPI run computes a day at 01:00 the next day. After every 10-minute load the ingest
DAG calls :func:`compute_intraday`, which computes, for the day still open (and for yesterday
until the daily run has packed it):

- the real-time (hourly) AQI per air station and for the county, for every complete hour;
- the county AQI of the day so far and the good-days ratio year to date with the open day not
  counted (the daily run's year-to-date count through the last day it computed);
- the hourly TPI by county, old town / other districts and district;
- each waterlogging point's current depth and today's (and still ongoing) events.

No AQI, TPI or event rule is written here: the production model files run unchanged
(``transforms/sql/intermediate`` and ``marts``), on an in-memory **scratch** DuckDB that holds a
copy of the few days of readings they read, the catalogue and the standards. So the intraday run
never writes the ``int`` or KPI tables the daily run owns, works the same on every warehouse
backend, and the warehouse only receives the small ``kpi.intraday_*`` tables (migration 0270),
replaced whole on every run. Values are cut at the end of the last complete hour
(``data_until``): readings of the hour still running are left out, so an hour, once shown, only
changes when late data arrives. The day-so-far county AQI is the daily models' value over the
hours so far with the day's minimum counts waived (``sql/intraday/waive_day_minimums.sql``):
it is not a GB 3095 daily value until the day is complete, and it is never counted as a good
or valid day.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from common.migrate import migrate
from common.settings import Settings
from transforms import MIGRATIONS_DIR, SQL, scalar
from transforms.air import DAILY_MODELS, MACROS, RULE_SETS_MODEL, natural_day_timezone
from transforms.prepare import prepare, run_models
from warehouse import db

TRAFFIC_MODELS = ("intermediate/traffic_hourly_detector", "marts/traffic_hourly")
WATERLOGGING_MODELS = ("marts/waterlogging_events",)
# Days of readings copied around the open days: the air models read the day before (8h / 24h
# moving windows) and one more for the 00:00 readings; an event started yesterday reads the day
# before it.
AIR_DAYS_BEFORE = 2
WATERLOGGING_DAYS_BEFORE = 2
# At most this many days back are recomputed when the daily run has not packed them: yesterday
# until 01:00. Older unpacked days wait for the daily run (or a backfill): keeping them out keeps
# the 10-minute run cheap whatever happened to the daily DAG.
MAX_OPEN_DAYS = 2


@dataclass
class IntradaySummary:
    open_days: list[str]  # ISO local days computed (the last one is today)
    data_until: str  # ISO UTC instant: the end of the last complete hour
    computed_at: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_complete_hour(now: datetime, timezone: str) -> datetime:
    """The end of the last complete local hour at ``now`` (aware, in ``timezone``)."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(minute=0, second=0, microsecond=0)


def compute_intraday(settings: Settings, now: datetime | None = None) -> IntradaySummary:
    """Recompute the provisional intra-day tables as of ``now`` (default: the clock), in one
    warehouse write (single file: under the writer lock; a lake: redone on a conflict)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    def work(con: duckdb.DuckDBPyConnection) -> IntradaySummary:
        return _compute(con, settings, now)

    return db.write(settings, work, what="intraday")


def _compute(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime) -> IntradaySummary:
    t0 = time.perf_counter()
    computed_at = datetime.now(UTC)
    until = last_complete_hour(now, settings.timezone)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    # The KPI tables (and 0270) exist before the first KPI run too.
    migrate(con, MIGRATIONS_DIR)
    days = [
        today - timedelta(days=k)
        for k in range(MAX_OPEN_DAYS - 1, 0, -1)
        if not scalar(con, "intraday/count_packed_day.sql", {"d": today - timedelta(days=k)})
    ] + [today]
    start = days[0]
    inputs = {
        "air": _read_obs(con, "air", start - timedelta(days=AIR_DAYS_BEFORE), today, until),
        "traffic": _read_obs(con, "traffic", start - timedelta(days=1), today, until),
        "waterlogging": _read_obs(
            con, "waterlogging", today - timedelta(days=WATERLOGGING_DAYS_BEFORE), today, now
        ),
        "dim_site": SQL.relation(con, "intraday/select_dim_site.sql").to_arrow_table(),
    }
    t_read = time.perf_counter()
    results = _scratch_compute(settings, inputs, start, today, until, computed_at)
    t_compute = time.perf_counter()
    params = {"data_until": until, "computed_at": computed_at, "open_day": today}
    SQL.run(con, "intraday/delete_intraday.sql")
    for name, table in results.items():
        with _registered(con, table):
            SQL.run(con, f"intraday/insert_{name}.sql", params)
    t_write = time.perf_counter()
    return IntradaySummary(
        open_days=[d.isoformat() for d in days],
        data_until=until.astimezone(UTC).isoformat(),
        computed_at=computed_at.isoformat(),
        rows={name: table.num_rows for name, table in results.items()}
        | {f"input_{k}": v.num_rows for k, v in inputs.items()},
        seconds={
            "read": round(t_read - t0, 3),
            "compute": round(t_compute - t_read, 3),
            "write": round(t_write - t_compute, 3),
        },
    )


def _read_obs(
    con: duckdb.DuckDBPyConnection, feed: str, first: date, last: date, until: datetime
) -> pa.Table:
    params = {"start_date": first, "end_date": last + timedelta(days=1), "until": until}
    return SQL.relation(con, "intraday/select_obs_window.sql", params, feed=feed).to_arrow_table()


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, table: pa.Table) -> Iterator[None]:
    """``table`` visible as ``intraday_input`` to the statements run meanwhile."""
    con.register("intraday_input", table)
    try:
        yield
    finally:
        con.unregister("intraday_input")


def _scratch_compute(
    settings: Settings,
    inputs: dict[str, pa.Table],
    start: date,
    today: date,
    until: datetime,
    computed_at: datetime,
) -> dict[str, pa.Table]:
    """Run the production models on a scratch in-memory DuckDB holding ``inputs``; return the
    rows for the ``kpi.intraday_*`` tables, keyed by table suffix."""
    con = db.configure(duckdb.connect(":memory:"))
    try:
        SQL.run(con, "intraday/create_scratch_schema.sql")
        for feed in ("air", "traffic", "waterlogging"):
            with _registered(con, inputs[feed]):
                SQL.run(con, "intraday/create_scratch_obs.sql", feed=feed)
        with _registered(con, inputs["dim_site"]):
            SQL.run(con, "intraday/create_scratch_dim_site.sql")
        # The standards from the reference folder, the KPI tables, the status macros: as the
        # daily run prepares its warehouse.
        prepare(con, settings)
        SQL.run(con, MACROS)
        SQL.run(con, RULE_SETS_MODEL)
        tz = natural_day_timezone(con)
        SQL.run(con, "intraday/waive_day_minimums.sql")
        air_params = {
            "start_date": start,
            "end_date": today,
            "tz": tz,
            "as_of_date": today,
            "computed_at": computed_at,
        }
        for model in DAILY_MODELS:
            SQL.run(con, f"{model}.sql", air_params)
        run_models(con, TRAFFIC_MODELS, start, today, settings.timezone)
        run_models(con, WATERLOGGING_MODELS, today - timedelta(days=1), today, settings.timezone)
        window = {"start_date": start, "end_date": today, "data_until": until}
        local_until = until.replace(tzinfo=None)
        return {
            "air_hourly": _arrow(con, "intraday/select_air_hourly.sql", window),
            "air_day": _arrow(con, "intraday/select_air_day_so_far.sql", window),
            "traffic_hourly": _arrow(
                con,
                "intraday/select_traffic_hourly.sql",
                {"start_date": start, "end_date": today, "data_until_local": local_until},
            ),
            "waterlogging_events": _arrow(
                con, "intraday/select_waterlogging_events.sql", {"open_day": today}
            ),
            "waterlogging_depths": _arrow(con, "intraday/select_waterlogging_depths.sql"),
        }
    finally:
        con.close()


def _arrow(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> pa.Table:
    return SQL.relation(con, name, params).to_arrow_table()
