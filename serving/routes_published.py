"""``/api/v1/pack/{day}/as-published?at=WHEN``: a day's KPI pack as it was published at an instant.

The API face of ``citypipe kpis --date D --as-published WHEN`` (``transforms/published.py``):
on a DuckLake warehouse the pack is read at the lake snapshot current at ``at`` (time travel),
with the restatements of the day recorded since. The same JSON as the command's.

The single DuckDB file keeps no history, and the API reads a plain snapshot copy of it: there is
nothing to travel back in. That is answered, not guessed: **409** with the reason and where to
look instead (``/api/v1/restatements`` lists every change of a published value with its old
value and time). The restatement history alone cannot rebuild a past pack: it records values
and texts, not the rows added later, nor status, coverage, target or details then.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from serving.context import ServeContext
from serving.params import MAX_DATE, MIN_DATE, BadParameter, identifier, parse_date
from serving.source import NotReady
from transforms import published
from transforms.cli import parse_when

# A date, or a date and time with an optional fraction and offset (ISO 8601, as the CLI takes).
_WHEN = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)

AtText = Annotated[
    str,
    Query(
        max_length=40,
        description=(
            "when: a date YYYY-MM-DD (the end of that local day) or an instant"
            " YYYY-MM-DDTHH:MM[:SS][+HH:MM] (local time without an offset)"
        ),
    ),
]
KpiText = Annotated[str | None, Query(max_length=80, description="only KPI ids starting so")]


def parse_at(value: str, tz: str) -> datetime:
    """``at`` as a timezone-aware instant (400 when malformed or outside 2000-2100)."""
    text = value.strip()
    if not _WHEN.fullmatch(text):
        raise BadParameter(
            "at", "expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM], got " + repr(value[:40])
        )
    try:
        # The CLI's reading of --as-published: a date is the end of that local day, an
        # instant without an offset is local time.
        when = parse_when(text.replace(" ", "T").replace("Z", "+00:00"), tz)
    except ValueError:
        raise BadParameter("at", f"not a calendar date or time: {value[:40]!r}") from None
    if not MIN_DATE <= when.date() <= MAX_DATE:
        raise BadParameter("at", f"must be between {MIN_DATE} and {MAX_DATE}")
    return when


def routes(ctx: ServeContext) -> APIRouter:
    api = APIRouter(prefix=ctx.api_prefix)
    tz = ctx.settings.timezone

    @api.get(
        "/pack/{day}/as-published",
        tags=["kpis"],
        responses={
            404: {"description": "nothing of the day published by then, or past the retention"},
            409: {"description": "this backend keeps no history (the single DuckDB file)"},
        },
    )
    def pack_as_published(day: str, at: AtText, kpi: KpiText = None) -> Any:
        """Day `day`'s KPI pack as it was published at `at`, and the restatements since
        (`citypipe kpis --date D --as-published WHEN`; DuckLake backends)."""
        local_date: date = parse_date(day, "day")
        when = parse_at(at, tz)
        prefix = identifier(kpi, "kpi")
        try:
            found = published.pack_as_published(ctx.settings, local_date, when, prefix)
        except published.TimeTravelUnavailable as exc:
            return JSONResponse(
                {
                    "error": str(exc),
                    "backend": ctx.settings.warehouse_target.kind,
                    "see": f"{ctx.api_prefix}/restatements?start={local_date}&end={local_date}",
                },
                status_code=409,
            )
        except published.NoSnapshotAt as exc:
            return JSONResponse({"error": str(exc), "parameter": "at"}, status_code=404)
        except FileNotFoundError as exc:  # no lake catalog yet: as every endpoint, not ready
            raise NotReady(str(exc)) from None
        return {
            "date": local_date.isoformat(),
            "as_published": {
                "at": when.isoformat(),
                "snapshot_id": found.snapshot_id,
                "snapshot_time": found.snapshot_time.isoformat(),
            },
            "count": len(found.kpis),
            "kpis": found.kpis,
            "restated_since": found.restated_since,
        }

    return api
