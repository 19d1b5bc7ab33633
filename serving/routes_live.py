"""``/api/v1/live/...``: the open day's provisional values (issue 11 item 2, docs/serving.md).

The 10-minute ingest DAG computes them (``transforms/intraday.py``, tables ``kpi.intraday_*``)
for the day still open, and for yesterday until the 01:00 KPI run has packed it. Every row and
every answer carries ``status``: ``provisional`` for an intraday value, ``final`` for a value of
a day the daily run has computed (its own look-back status, provisional for 7 days in the KPI
pack, is then ``kpi_status``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.context import ServeContext
from serving.params import MAX_OFFSET, MAX_PAGE_ROWS, known, parse_date

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
DayText = Annotated[
    str | None,
    Query(description="YYYY-MM-DD (local day); default: the day of the last complete hour"),
]
IdText = Annotated[str | None, Query(max_length=200)]


def routes(ctx: ServeContext) -> APIRouter:
    router = APIRouter(prefix=f"{ctx.api_prefix}/live", tags=["live"])

    def open_day() -> dict[str, Any]:
        found = ctx.rows("select_live_open_day.sql", {})
        if found:
            return found[0]
        return {"open_day": None, "last_hour_day": None, "data_until": None, "computed_at": None}

    def day_param(day: str | None, run: dict[str, Any]) -> Any:
        if day is not None:
            return parse_date(day, "day")
        # the day of the last complete hour: just after midnight, yesterday's last hours
        return run["last_hour_day"] or ctx.today()

    def answer_status(found: list[dict[str, Any]]) -> str | None:
        statuses = {r["status"] for r in found}
        if not statuses:
            return None
        return "provisional" if "provisional" in statuses else "final"

    @router.get("/air/hourly")
    def live_air_hourly(
        day: DayText = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Hourly AQI of a day for the stations and the county (`site_id=county`), newest hour
        first: provisional (intraday) until the daily run has packed the day, final after."""
        run = open_day()
        local_date = day_param(day, run)
        scope = "county" if site_id == "county" else ctx.site_param(site_id, "air")
        params = {"day": local_date, "scope": scope}
        found = ctx.page("select_live_air_hourly.sql", params, limit, offset)
        return {
            "day": local_date,
            "status": answer_status(found["rows"]),
            "last_run": run,
            **found,
        }

    @router.get("/traffic/tpi")
    def live_traffic_tpi(
        day: DayText = None,
        district: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Hourly TPI of a day by scope (`county`, `old_town`, `other_districts` or a district):
        provisional until the daily run has packed the day, final after."""
        run = open_day()
        local_date = day_param(day, run)
        scopes = {"county", "old_town", "other_districts"} | {
            s.district for s in ctx.catalogue.by_feed("traffic") if s.district
        }
        params = {
            "day": local_date,
            "scope": known(district, frozenset(scopes), "district", "district"),
        }
        found = ctx.page("select_live_traffic_tpi.sql", params, limit, offset)
        return {
            "day": local_date,
            "status": answer_status(found["rows"]),
            "last_run": run,
            **found,
        }

    @router.get("/waterlogging/current")
    def live_waterlogging(site_id: IdText = None) -> dict[str, Any]:
        """Each point's current depth and alert level, and the open day's events (with those
        still ongoing), as of the last intraday run: always provisional."""
        site = ctx.site_param(site_id, "waterlogging")
        depths = ctx.rows("select_live_waterlogging_depths.sql", {"site_id": site})
        events = ctx.rows("select_live_waterlogging_events.sql", {"site_id": site})
        return {
            "status": "provisional",
            "last_run": open_day(),
            "depths": depths,
            "events": events,
            "open_events": sum(1 for e in events if e["event_status"] == "ongoing"),
        }

    @router.get("/air/good-days")
    def live_good_days() -> dict[str, Any]:
        """The good-days ratio year to date as the daily run counted it (through
        `counted_through`), the open day not counted, and the county AQI of the day so far."""
        found = ctx.rows("select_live_good_days.sql", {})
        return {"status": "provisional", "good_days": found[0] if found else None}

    return router
