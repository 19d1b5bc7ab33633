"""The daily KPI run: recompute a natural day (plus late-data days), rebuild the KPI pack
``kpi.kpi_values`` and record restatements of values that changed.

``compute_day(settings|con, D, reason)`` is what the Airflow DAG and ``citypipe kpis`` use;
``compute_range`` is the whole-range path (backfill, benchmark) that runs every SQL model once
over ``start..end`` instead of once per day.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from common.settings import Settings
from transforms import SQL
from transforms.models import DEFAULT_TZ, prepare, transaction
from transforms.status import lookback_days as configured_lookback
from transforms.traffic import compute_traffic_range
from transforms.water import compute_water_range
from transforms.waterlogging import compute_waterlogging_range, ongoing_event_days

log = logging.getLogger(__name__)

PACK_MODELS = ("pack_aqi", "pack_air_station", "pack_water", "pack_waterlogging", "pack_traffic")

RangeFn = Callable[[duckdb.DuckDBPyConnection, date, date], None]


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


def local_today(tz: str = DEFAULT_TZ) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def _air_range() -> RangeFn | None:
    # Imported lazily: the air module (H4a) is optional for a deployment without air stations.
    try:
        from transforms.air import compute_air_range
    except ImportError:  # pragma: no cover - air landed; kept for partial installs
        return None
    return compute_air_range


def feed_functions() -> dict[str, RangeFn]:
    fns: dict[str, RangeFn] = {}
    air = _air_range()
    if air is not None:
        fns["air"] = air
    fns["water"] = compute_water_range
    fns["waterlogging"] = compute_waterlogging_range
    fns["traffic"] = compute_traffic_range
    return fns


def days_to_recompute(
    con: duckdb.DuckDBPyConnection, target_day: date, lookback_days: int | None = None
) -> list[date]:
    """The target day, the dirty days (core.dirty_days not yet consumed) within the look-back,
    and the start days of waterlogging events still open (so late readings can close them)."""
    lookback = configured_lookback(target_day) if lookback_days is None else lookback_days
    since = target_day - timedelta(days=lookback)
    days = {target_day}
    if _table_exists(con, "core", "dirty_days"):
        rows = con.execute(
            "select distinct feed, local_date from core.dirty_days"
            " where local_date between ? and ?"
            " and (kpi_computed_at is null or kpi_computed_at < last_marked_at)",
            [since, target_day],
        ).fetchall()
        for feed, day in rows:
            days.add(day)
            # A reading stamped D 00:00 ends the last hour of D-1 (its span is the minute or
            # interval before midnight), while its natural day in core is D: the hourly models
            # (air, traffic) and waterlogging events put it in D-1: recompute the day before too.
            if feed in ("air", "traffic", "waterlogging") and day - timedelta(days=1) >= since:
                days.add(day - timedelta(days=1))
    if _table_exists(con, "kpi", "kpi_event_waterlogging"):
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
) -> RunSummary:
    """Recompute every feed for the natural days start..end, then the pack and restatements.

    With ``extend`` the water period rows and the pack are rebuilt up to the last computed day
    of ``end``'s year: the month- and year-to-date values of later days depend on these days.
    """
    if end < start:
        raise ValueError(f"empty range {start}..{end}")
    started = datetime.now().astimezone()
    as_of = as_of or started
    as_of_date = as_of.astimezone(ZoneInfo(DEFAULT_TZ)).date()
    summary = RunSummary(uuid.uuid4().hex, reason, start, end, as_of_date)
    prepare(con)
    for feed, fn in feed_functions().items():
        log.info("computing %s %s..%s", feed, start, end)
        if feed == "air":
            fn(con, start, end, as_of=as_of)  # type: ignore[call-arg]
        elif feed == "water":
            fn(con, start, end, extend=extend)  # type: ignore[call-arg]
        else:
            fn(con, start, end)
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
        SQL.run(con, SQL.root / "pack" / "macros.sql")
        SQL.run(con, SQL.root / "pack" / "snapshot.sql", params)
        for model in PACK_MODELS:
            SQL.run(con, SQL.root / "pack" / f"{model}.sql", params)
        before = _count(con, "select count(*) from kpi.kpi_restatements")
        SQL.run(con, SQL.root / "pack" / "restatements.sql", params)
        summary.n_restatements = _count(con, "select count(*) from kpi.kpi_restatements") - before
        summary.n_values = _count(
            con,
            "select count(*) from kpi.kpi_values where local_date between ? and ?",
            [start, pack_end],
        )
        con.execute(
            "insert into kpi.kpi_runs values (?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                summary.run_id,
                reason,
                start,
                end,
                as_of_date,
                summary.n_values,
                summary.n_restatements,
                started,
            ],
        )
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
    SQL.run(con, SQL.root / "pack" / "finalize.sql", {"as_of_date": as_of_date})


def mark_consumed(
    con: duckdb.DuckDBPyConnection, start: date, end: date, started_at: datetime
) -> None:
    """Dirty days in start..end marked before the run started are now computed."""
    if not _table_exists(con, "core", "dirty_days"):
        return
    con.execute(
        "update core.dirty_days set kpi_computed_at = ?"
        " where local_date between ? and ? and last_marked_at <= ?"
        " and (kpi_computed_at is null or kpi_computed_at < last_marked_at)",
        [started_at, start, end, started_at],
    )


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
    with _connection(target) as con:
        started = datetime.now().astimezone()
        days = days_to_recompute(con, local_date, lookback_days)
        summary = compute_range(con, days[0], local_date, reason, as_of=as_of)
        mark_consumed(con, days[0], local_date, started)
        finalize(con, summary.as_of_date)
        summary.days = days
        return summary


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
    out: list[RunSummary] = []
    with _connection(target) as con:
        started = datetime.now().astimezone()
        cur = start
        while cur <= end:
            chunk_end = min(end, cur + timedelta(days=chunk_days - 1))
            # Later chunks recompute the later days: only the last one extends to year end.
            summary = compute_range(
                con, cur, chunk_end, reason, as_of=as_of, extend=chunk_end == end
            )
            out.append(summary)
            if progress is not None:
                progress(cur, chunk_end, summary)
            cur = chunk_end + timedelta(days=1)
        mark_consumed(con, start, end, started)
        finalize(con, (as_of or started).astimezone(ZoneInfo(DEFAULT_TZ)).date())
    return out


@contextlib.contextmanager
def _connection(
    target: Settings | duckdb.DuckDBPyConnection,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection given, or the warehouse writer (lock + migrations) from settings."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        yield target
        return
    from warehouse.db import writer

    with writer(target) as con:
        yield con


def _last_packed_day(con: duckdb.DuckDBPyConnection, end: date) -> date:
    last = _count(
        con,
        "select max(local_date) from kpi.kpi_values where year(local_date) = ?",
        [end.year],
    )
    return max(end, last) if last else end  # type: ignore[type-var,return-value]


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None):  # type: ignore[no-untyped-def]
    return con.execute(sql, params or []).fetchone()[0]  # type: ignore[index]


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables"
            " where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]  # type: ignore[index]
    )


# --- Steps of the citypipe_daily_kpis DAG (plain functions: the DAG file only wires them) ---


def target_day(conf: dict[str, object] | None, logical_date: datetime | None, tz: str) -> date:
    """The natural day a run computes: conf["date"] when given (``citypipe run --date D``),
    else the local day before the run's logical date (the 01:00 run computes yesterday)."""
    if conf and conf.get("date"):
        return date.fromisoformat(str(conf["date"]))
    if logical_date is None:
        raise ValueError("neither conf['date'] nor a logical date")
    return logical_date.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def plan_step(settings: Settings, target: date) -> dict[str, object]:
    """Which days this run recomputes (read under the lock, so no loader is mid-write)."""
    from warehouse.db import writer

    with writer(settings) as con:
        prepare(con)
        days = days_to_recompute(con, target)
    return {"target": target.isoformat(), "days": [d.isoformat() for d in days]}


def compute_step(settings: Settings, plan: dict[str, object], reason: str) -> dict[str, object]:
    """Recompute plan's days (one range pass), consume dirty days, finalize; a JSON summary."""
    from warehouse.db import writer

    days = [date.fromisoformat(str(d)) for d in plan["days"]]  # type: ignore[attr-defined]
    with writer(settings) as con:
        started = datetime.now().astimezone()
        s = compute_range(con, days[0], days[-1], reason)
        mark_consumed(con, days[0], days[-1], started)
        finalize(con, s.as_of_date)
    return {
        "run_id": s.run_id,
        "reason": reason,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "n_values": s.n_values,
        "n_restatements": s.n_restatements,
        "feeds": s.feeds,
    }


def restatements_step(settings: Settings, summary: dict[str, object]) -> list[dict[str, object]]:
    """The restatements the run recorded (logged; a publisher would announce them)."""
    from warehouse.db import reader

    with reader(settings) as con:
        cur = con.execute(
            "select kpi_id, local_date, dimension, old_value, new_value, old_value_text,"
            " new_value_text from kpi.kpi_restatements r"
            " where reason = ? order by local_date, kpi_id, dimension",
            [f"{summary.get('reason', '')}"],
        )
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        log.warning("restated %(kpi_id)s %(local_date)s %(dimension)s: %(old_value)s -> "
                    "%(new_value)s", r)  # fmt: skip
    return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()} for r in rows]
