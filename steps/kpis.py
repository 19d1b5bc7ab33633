"""The steps of the ``citypipe_daily_kpis`` DAG, top to bottom (the DAG file only wires them).

Every day at 01:00 local time the DAG computes natural day D = the local day before the run
(or conf ``{"date": D}``):

1. ``plan``: which days to recompute: D, the dirty days of the late-data look-back and the days
   with a waterlogging event still open. It loads the standards reference tables, the one load
   of the run (read under the writer lock, so no loader is mid-write).
2. ``compute``: one range pass over those days (every feed of the KPI registry, then the pack
   ``kpi.pack_values`` and its restatements), then the dirty days are consumed and the values
   that left the look-back are finalized.
3. ``restatements``: the published values the run changed (logged).
4. ``publish_pack`` (after ``compute``, beside ``restatements``): the newest day of every KPI and
   dimension goes out retained on MQTT, ``city/{city}/kpi/{kpi_id}/{dimension}``
   (``transforms.pack_publisher``). It republishes what the warehouse holds, not what this run
   computed, so a retry or the next run repairs a failed publication; a restated value of the
   newest day goes out with it.

Results between steps are TypedDicts of plain JSON types (they travel as XComs). Nothing here
imports Airflow or does I/O at import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict
from zoneinfo import ZoneInfo

from common.settings import Settings, get_settings

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)


class Plan(TypedDict):
    target: str  # D, ISO date
    days: list[str]  # every day to recompute, ISO dates, ascending; the last is D


class RunResult(TypedDict):
    run_id: str
    reason: str
    start: str
    end: str
    n_values: int
    n_restatements: int
    feeds: list[str]


class Published(TypedDict):
    broker: str | None
    topics: int
    published: int
    unchanged: int
    cleared: int
    invalid: int
    newest_day: str | None
    skipped: str | None
    degraded: str | None


class Restatement(TypedDict):
    kpi_id: str
    local_date: str
    dimension: str
    old_value: float | None
    new_value: float | None
    old_value_text: str | None
    new_value_text: str | None


def load_settings() -> Settings:
    return get_settings()


def schedule_timezone() -> str:
    """The zone of the DAG's 01:00 schedule: the settings' time zone. Read when the DAG file
    is parsed (configuration from the environment, not I/O): a timetable needs it then."""
    return get_settings().timezone


def target_day(conf: Mapping[str, object] | None, logical_date: datetime | None, tz: str) -> date:
    """The natural day a run computes: conf["date"] when given (``citypipe run --date D``),
    else the local day before the run's logical date (the 01:00 run computes yesterday)."""
    if conf and conf.get("date"):
        return date.fromisoformat(str(conf["date"]))
    if logical_date is None:
        raise ValueError("neither conf['date'] nor a logical date")
    return logical_date.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def plan(
    settings: Settings, conf: Mapping[str, object] | None, logical_date: datetime | None
) -> Plan:
    """Step 1: load the standards (once per run) and list the days to recompute."""
    from transforms.daily import days_to_recompute
    from transforms.prepare import prepare
    from warehouse.db import write_steps

    target = target_day(conf, logical_date, settings.timezone)

    def work(con: duckdb.DuckDBPyConnection) -> list[date]:
        prepare(con, settings)
        return days_to_recompute(con, target)

    days = write_steps(settings, work, what="kpi plan")
    return {"target": target.isoformat(), "days": [d.isoformat() for d in days]}


def compute(settings: Settings, plan: Plan, reason: str) -> RunResult:
    """Step 2: recompute the plan's days in one range pass, consume dirty days, finalize."""
    from transforms.daily import RunSummary, compute_range, finalize, mark_consumed
    from transforms.prepare import prepare_models
    from warehouse.db import write_steps

    first, last = date.fromisoformat(plan["days"][0]), date.fromisoformat(plan["days"][-1])

    def work(con: duckdb.DuckDBPyConnection) -> RunSummary:
        # On a lake one transaction, redone whole on a conflict (write_steps): the summary
        # below is always that of the attempt that committed.
        started = datetime.now().astimezone()
        prepare_models(con)  # over the reference tables the plan step loaded
        summary = compute_range(con, first, last, reason, settings=settings, prepared=True)
        mark_consumed(con, first, last, started)
        finalize(con, summary.as_of_date)
        return summary

    s = write_steps(settings, work, what="kpi compute")
    return {
        "run_id": s.run_id,
        "reason": reason,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "n_values": s.n_values,
        "n_restatements": s.n_restatements,
        "feeds": s.feeds,
    }


def restatements(settings: Settings, result: RunResult) -> list[Restatement]:
    """Step 3: the restatements the run recorded, logged."""
    from transforms import SQL
    from warehouse.db import reader

    with reader(settings) as con:
        rows = SQL.run(con, "pack/select_restatements.sql", {"reason": result["reason"]})
        found = rows.fetchall()
    out: list[Restatement] = []
    for kpi_id, day, dimension, old, new, old_text, new_text in found:
        log.warning("restated %s %s %s: %s -> %s", kpi_id, day, dimension, old, new)
        out.append(
            {
                "kpi_id": kpi_id,
                "local_date": day.isoformat(),
                "dimension": dimension,
                "old_value": old,
                "new_value": new,
                "old_value_text": old_text,
                "new_value_text": new_text,
            }
        )
    return out


def publish_pack(settings: Settings, result: RunResult) -> Published:
    """Step 4: the newest pack values, retained on MQTT (``transforms.pack_publisher``).

    Raises when the broker is down or refuses, or a PUBACK is missing: the task fails (recorded
    by ``on_failure`` and in ``{home}/status/kpi_publish.json``) and Airflow retries it. Without
    a broker configured (``CITYPIPE_MQTT_URL`` unset) it publishes nothing and says so.
    """
    from transforms.pack_publisher import publish_latest

    r = publish_latest(settings)
    log.info("run %s: KPI pack publication %s", result["run_id"], r)
    return {
        "broker": r.broker,
        "topics": r.topics,
        "published": r.published,
        "unchanged": r.unchanged,
        "cleared": r.cleared,
        "invalid": len(r.invalid),
        "newest_day": r.newest_day,
        "skipped": r.skipped,
        "degraded": r.degraded,
    }


def on_failure(context: Any) -> None:
    """Airflow's failure callback: recorded in the data folder's status (never raises)."""
    from warehouse.alerts import record_task_failure

    record_task_failure(context)
