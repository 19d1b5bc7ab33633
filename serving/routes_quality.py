"""The data-quality report for environmental staff (issue 11 item 6, docs/serving.md
"Data-quality report"): the page ``GET /quality`` and the endpoints only it adds:

- ``/api/v1/quality/seq-gaps``: loss upstream of the broker, per device and day, from the
  contract's per-device ``seq`` counter (``dq.seq_gaps``, kept by the load);
- ``/api/v1/quality/runs``: the GX validation runs with their outcome and a link to each
  run's Data Docs page (served under ``/datadocs/`` by ``serving/routes_datadocs.py``).

The page itself reads these and the existing ``/api/v1/quality/days``, ``/flagged`` and
``/quarantined`` endpoints with the browser's session cookie.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from common.catalogue import FEEDS
from serving.context import ServeContext
from serving.params import MAX_OFFSET, MAX_PAGE_ROWS, choice, date_range
from serving.responses import csv_page
from serving.routes_datadocs import PREFIX as DATA_DOCS_PREFIX
from serving.routes_datadocs import result_url

FORMATS = ("json", "csv")
# A device that loses every other reading has ~1400 gaps a day: the answer lists the first
# ones and says how many there are (`anomalies`); the rest are in dq.seq_gaps.
MAX_LISTED_ANOMALIES = 100

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
DateText = Annotated[str | None, Query(description="YYYY-MM-DD (local natural day)")]
IdText = Annotated[str | None, Query(max_length=200)]
FormatText = Annotated[str, Query(description="json or csv")]


def data_docs_link(docs_path: str | None) -> str | None:
    """The URL on this server of a stored Data Docs page (``dq.validation_runs.data_docs_url``,
    a file path under the site): ``routes_datadocs.result_url``. None when the run has no page
    (Data Docs not built yet) or the stored path is not a page of the site."""
    if not docs_path:
        return None
    try:
        url = result_url(docs_path)
    except ValueError:
        return None
    # A stored path that climbs out of the site would only get a 400 from /datadocs.
    if any(part in ("..", ".") for part in url.split("/")):
        return None
    return url


def routes(ctx: ServeContext) -> APIRouter:
    """``GET /quality`` and ``/api/v1/quality/seq-gaps``, ``/api/v1/quality/runs``."""
    router = APIRouter()

    def feed_and_site(feed: str | None, site_id: str | None) -> tuple[str | None, str | None]:
        f = choice(feed, FEEDS, "feed")
        return f, ctx.site_param(site_id, f)

    @router.get("/quality", include_in_schema=False)
    def quality_page() -> HTMLResponse:
        """The report (serving/static/quality/): static, the data comes from the API."""
        page = files("serving").joinpath("static/quality/index.html").read_text("utf-8")
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get(f"{ctx.api_prefix}/quality/seq-gaps", tags=["quality"], response_model=None)
    def quality_seq_gaps(
        start: DateText = None,
        end: DateText = None,
        feed: IdText = None,
        site_id: IdText = None,
        format: FormatText = "json",
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any] | Response:
        """Per device and local day: readings stored, readings the device's `seq` counter says
        it sent (`expected_by_seq` = readings + missing − repeats), `missing` (readings lost in
        gaps), `gaps`, `resets` (seq went back: a reboot, not loss), `repeats`, and the
        anomalies (at most 100 listed; `anomalies` counts them all). An anomaly belongs to the
        day of its later reading. Paged; `format=csv` gives a CSV download."""
        first, last = date_range(start, end, today=ctx.today(), default_days=7)
        f, site = feed_and_site(feed, site_id)
        fmt = choice(format, FORMATS, "format")
        params = {
            "start_date": first,
            "end_date": last,
            "feed": f,
            "site_id": site,
            "max_listed": MAX_LISTED_ANOMALIES,
        }
        result = ctx.page("select_seq_gaps.sql", params, limit, offset)
        if fmt == "csv":
            for row in result["rows"]:
                row["anomaly_list"] = " ".join(_anomaly_text(a) for a in row["anomaly_list"])
            return csv_page(result, "seq_gaps", first, last)
        return {"start": first, "end": last, **result}

    @router.get(f"{ctx.api_prefix}/quality/runs", tags=["quality"], response_model=None)
    def quality_runs(
        start: DateText = None,
        end: DateText = None,
        feed: IdText = None,
        format: FormatText = "json",
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any] | Response:
        """GX validation runs that validated readings of the local days of the range (the
        batch's landing partitions: `local_dates`), newest first: feed, outcome, expectations
        evaluated and failed, statistics, readings flagged (in all and per expectation) and
        `data_docs_url`, the run's Data Docs page on this server (null until the site is
        built). Paged; `format=csv` gives a CSV download."""
        first, last = date_range(start, end, today=ctx.today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "feed": choice(feed, FEEDS, "feed"),
        }
        fmt = choice(format, FORMATS, "format")
        result = ctx.page("select_validation_runs.sql", params, limit, offset)
        for row in result["rows"]:
            row["statistics"] = json.loads(row.pop("statistics_json") or "{}")
            row["data_docs_url"] = data_docs_link(row.pop("data_docs_path"))
        if fmt == "csv":
            for row in result["rows"]:
                row["statistics"] = json.dumps(row["statistics"], sort_keys=True)
                row["local_dates"] = " ".join(d.isoformat() for d in row["local_dates"])
                row["flagged"] = " ".join(
                    f"{x['expectation']}:{x['readings']}" for x in row["flagged"]
                )
            return csv_page(result, "validation_runs", first, last)
        return {
            "start": first,
            "end": last,
            "data_docs_index": f"{DATA_DOCS_PREFIX}/index.html",
            **result,
        }

    return router


def _anomaly_text(a: dict[str, Any]) -> str:
    """One anomaly in a CSV cell: ``gap:11-13(3)@<observed_at_after>``, ``reset:3>1@…``."""
    at = a["observed_at_after"].isoformat() if a["observed_at_after"] else ""
    if a["kind"] == "gap":
        return f"gap:{a['seq_from']}-{a['seq_to']}({a['missing']})@{at}"
    return f"{a['kind']}:{a['seq_before']}>{a['seq_after']}@{at}"
