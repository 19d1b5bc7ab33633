"""The KPI run: recompute natural days with every feed of the KPI registry, rebuild the KPI pack
``kpi.pack_values``, record restatements of values that changed, finalize what left the
look-back.

``compute_day`` recomputes a day and every day that needs it again (dirty, open events): the
daily DAG (``steps.kpis``) does the same in two steps. ``backfill`` computes a date range in
chunks (``citypipe backfill``); ``compute_range`` is one range pass (both, and the benchmark).
The reference tables are loaded once per run (``prepare``), then every feed runs ``prepared``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import duckdb

from common.settings import Settings, get_settings
from common.sql import transaction
from transforms import SQL, scalar
from transforms.prepare import prepare, prepare_models
from transforms.registry import KPIS
from transforms.status import lookback_days as configured_lookback
from transforms.waterlogging import ongoing_event_days

log = logging.getLogger(__name__)

T = TypeVar("T")

PACK_MODELS = ("pack_aqi", "pack_air_station", "pack_water", "pack_waterlogging", "pack_traffic")


@dataclass
class RunSummary:
    run_id: str
    reason: str
    start: date
    end: date
    as_of_date: date
    days: list[date] = field(default_factory=list)
    n_values: int = 0
    n_restatements: int = 0
    feeds: list[str] = field(default_factory=list)


def days_to_recompute(
    con: duckdb.DuckDBPyConnection, target_day: date, lookback_days: int | None = None
) -> list[date]:
    """The target day, the dirty days (core.dirty_days not yet consumed) within the look-back,
    and the start days of waterlogging events still open (so late readings can close them).
    Without ``lookback_days`` the status rule's look-back applies (needs ``prepare()``)."""
    lookback = configured_lookback(con, target_day) if lookback_days is None else lookback_days
    since = target_day - timedelta(days=lookback)
    days = {target_day}
    if _table_exists(con, "core", "dirty_days"):
        rows = SQL.run(
            con, "queries/select_dirty_days.sql", {"since": since, "until": target_day}
        ).fetchall()
        for feed, day in rows:
            days.add(day)
            # A reading stamped D 00:00 ends the last hour of D-1 (its span is the minute or
            # interval before midnight), while its natural day in core is D: the hourly models
            # (air, traffic) and waterlogging events put it in D-1: recompute the day before too.
            if feed in ("air", "traffic", "waterlogging") and day - timedelta(days=1) >= since:
                days.add(day - timedelta(days=1))
    if _table_exists(con, "kpi", "waterlogging_events"):
        days.update(ongoing_event_days(con, since, target_day))
    return sorted(days)


def compute_range(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    reason: str,
    as_of: datetime | None = None,
    *,
    extend: bool = True,
    settings: Settings | None = None,
    prepared: bool = False,
) -> RunSummary:
    """Recompute every feed for the natural days start..end, then the pack and restatements.

    With ``extend`` the water period rows and the pack are rebuilt up to the last computed day
    of ``end``'s year: the month- and year-to-date values of later days depend on these days.
    """
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    settings = settings or get_settings()
    started = datetime.now().astimezone()
    as_of = as_of or started
    as_of_date = as_of.astimezone(ZoneInfo(settings.timezone)).date()
    summary = RunSummary(uuid.uuid4().hex, reason, start, end, as_of_date)
    if not prepared:
        prepare(con, settings)
    for feed, compute in KPIS.items():
        log.info("computing %s %s..%s", feed, start, end)
        compute(con, start, end, settings=settings, as_of=as_of, extend=extend, prepared=True)
        summary.feeds.append(feed)
    pack_end = _last_packed_day(con, end) if extend else end
    summary.days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    params = {
        "start_date": start,
        "end_date": pack_end,
        "as_of_date": as_of_date,
        "reason": reason,
    }
    with transaction(con):
        SQL.run(con, "pack/macros.sql")
        SQL.run(con, "pack/snapshot.sql", params)
        for model in PACK_MODELS:
            SQL.run(con, f"pack/{model}.sql", params)
        before = scalar(con, "queries/count_restatements.sql")
        SQL.run(con, "pack/restatements.sql", params)
        summary.n_restatements = scalar(con, "queries/count_restatements.sql") - before
        summary.n_values = scalar(
            con, "queries/count_pack_values.sql", {"start_date": start, "end_date": pack_end}
        )
        run = {
            "run_id": summary.run_id,
            "reason": reason,
            "start_date": start,
            "end_date": end,
            "as_of_date": as_of_date,
            "n_values": summary.n_values,
            "n_restatements": summary.n_restatements,
            "started_at": started,
        }
        SQL.run(con, "queries/insert_run.sql", run)
    if summary.n_restatements:
        log.warning(
            "%d published KPI value(s) restated for %s..%s (%s)",
            summary.n_restatements,
            start,
            pack_end,
            reason,
        )
    return summary


def finalize(con: duckdb.DuckDBPyConnection, as_of_date: date) -> None:
    """Promote pack rows whose day has left the look-back (and has coverage) to final."""
    SQL.run(con, "pack/finalize.sql", {"as_of_date": as_of_date})


def mark_consumed(
    con: duckdb.DuckDBPyConnection, start: date, end: date, started_at: datetime
) -> None:
    """Dirty days in start..end marked before the run started are now computed."""
    if not _table_exists(con, "core", "dirty_days"):
        return
    params = {"start_date": start, "end_date": end, "started_at": started_at}
    SQL.run(con, "queries/update_dirty_days_consumed.sql", params)


def compute_day(
    target: Settings | duckdb.DuckDBPyConnection,
    local_date: date,
    reason: str = "daily",
    as_of: datetime | None = None,
    lookback_days: int | None = None,
) -> RunSummary:
    """Compute natural day ``local_date`` and every day that needs it again (dirty, open events).

    Days between the earliest such day and ``local_date`` are recomputed in one range pass
    (their month/year-to-date values depend on the earlier days).
    """
    settings = target if isinstance(target, Settings) else get_settings()

    def work(con: duckdb.DuckDBPyConnection) -> RunSummary:
        started = datetime.now().astimezone()
        prepare(con, settings)
        days = days_to_recompute(con, local_date, lookback_days)
        summary = compute_range(
            con, days[0], local_date, reason, as_of=as_of, settings=settings, prepared=True
        )
        mark_consumed(con, days[0], local_date, started)
        finalize(con, summary.as_of_date)
        summary.days = days
        return summary

    with _units(target) as units:
        return units.run(work)


def backfill(
    target: Settings | duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    reason: str = "backfill",
    chunk_days: int = 31,
    as_of: datetime | None = None,
    progress: Callable[[date, date, RunSummary], None] | None = None,
) -> list[RunSummary]:
    """Compute start..end in order, ``chunk_days`` natural days per range pass (idempotent)."""
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    settings = target if isinstance(target, Settings) else get_settings()
    out: list[RunSummary] = []
    with _units(target) as units:

        def chunk(con: duckdb.DuckDBPyConnection, first: date, last: date) -> RunSummary:
            if units.fresh:
                prepare_models(con)  # a new connection: the status macros
            # Later chunks recompute the later days: only the last one extends to year end.
            return compute_range(
                con,
                first,
                last,
                reason,
                as_of=as_of,
                extend=last == end,
                settings=settings,
                prepared=True,
            )

        started = datetime.now().astimezone()
        units.run(lambda con: prepare(con, settings))
        cur = start
        while cur <= end:
            chunk_end = min(end, cur + timedelta(days=chunk_days - 1))
            summary = units.run(functools.partial(chunk, first=cur, last=chunk_end))
            out.append(summary)
            if progress is not None:
                progress(cur, chunk_end, summary)
            cur = chunk_end + timedelta(days=1)

        def close(con: duckdb.DuckDBPyConnection) -> None:
            if units.fresh:
                prepare_models(con)  # finalize's status rule is a temp macro of the connection
            mark_consumed(con, start, end, started)
            finalize(con, (as_of or started).astimezone(ZoneInfo(settings.timezone)).date())

        units.run(close)
    return out


class _Units:
    """Runs the units of work of a KPI run, in order (see :func:`_units`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, settings: Settings | None) -> None:
        self._con = con
        self._settings = settings
        # each unit on a fresh connection (a lake), so temp macros must be made again
        self.fresh = con is None

    def run(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        if self._con is not None:
            return work(self._con)
        from warehouse.db import write_steps

        assert self._settings is not None
        return write_steps(self._settings, work, what="kpi run")


@contextlib.contextmanager
def _units(target: Settings | duckdb.DuckDBPyConnection) -> Iterator[_Units]:
    """How a KPI run's units of work run. On a connection given, or on the single file under
    one writer (lock and migrations) held throughout, in turn on that connection, each step
    committing on its own. On a lake each unit is one transaction on a fresh writer, redone
    whole when its commit conflicts (``warehouse.db.write_steps``): a backfill's chunks commit
    one by one, so a conflict redoes one chunk, never the whole backfill."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        yield _Units(target, None)
        return
    if target.warehouse_target.is_lake:
        yield _Units(None, target)
        return
    from warehouse.db import writer

    with writer(target) as con:
        yield _Units(con, None)


def _last_packed_day(con: duckdb.DuckDBPyConnection, end: date) -> date:
    last: date | None = scalar(con, "queries/select_last_packed_day.sql", {"year": end.year})
    return max(end, last) if last else end


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(scalar(con, "queries/count_tables.sql", {"schema": schema, "table": table}))
