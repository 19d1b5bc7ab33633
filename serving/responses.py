"""The JSON shapes of the API's answers, for the OpenAPI spec (and so for `/docs` and the
schemathesis contract test, tests/integration/serving/test_serve_contract.py).

Rows stay ``dict[str, Any]``: their columns are the SQL files' (serving/sql/, docs/serving.md).
Also the one CSV download of a page of rows (``csv_page``). Every model allows extra keys, so a key an endpoint adds later is served, not silently dropped
by FastAPI's response filtering.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from datetime import date
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

Row = dict[str, Any]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(Open):
    """Every 4xx and 5xx answer of the API."""

    error: str = Field(description="what went wrong, for a person")
    parameter: str | None = Field(None, description="the offending parameter (400, 404)")
    problems: list[dict[str, Any]] | None = Field(None, description="each bad parameter (422)")
    incident: str | None = Field(None, description="the id in the server log (500)")


class Page(Open):
    """A page of rows; ask again with ``offset=next_offset`` while it is not null."""

    count: int
    limit: int
    offset: int
    next_offset: int | None
    rows: list[Row]


class KpiPage(Page):
    kpi_id: str
    start: dt.date
    end: dt.date


class Rows(Open):
    count: int
    rows: list[Row]


class KpiIds(Open):
    feeds: list[str]
    kpis: list[Row]


class Pack(Open):
    date: dt.date | None = Field(description="the pack's local day (null: no pack yet)")
    count: int
    kpis: list[Row]


class GoodDays(Open):
    good_days: Row | None = Field(description="null before the first computed day")


class Sites(Open):
    city: str
    timezone: str
    count: int
    sites: list[Row]


class Alert(Open):
    id: str
    kind: str
    site_id: str
    level: str
    level_no: int
    value: float
    unit: str
    threshold: float
    started_at: dt.datetime
    updated_at: dt.datetime
    cleared_at: dt.datetime | None = None
    peak_value: float | None = None
    channel: str | None = None


class Alerts(Open):
    count: int
    alerts: list[Alert]


class RecentAlerts(Alerts):
    since: dt.datetime


class Health(Open):
    status: str


class Ready(Open):
    ready: bool
    last_load_at: dt.datetime | None = None
    last_kpi_run_at: dt.datetime | None = None
    last_kpi_day: dt.date | None = None
    backend: str | None = None
    error: str | None = Field(None, description="why the warehouse is not readable (503)")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring the error shape for these status codes."""
    return {code: {"model": Error} for code in codes}


# The answers every /api/v1 path can give besides 200 (docs/serving.md, "Bad requests").
API_ERRORS = errors(400, 401, 404, 422, 503)
CSV_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Page,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "a page of rows as JSON, or as CSV with `format=csv`",
    }
}


# A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(...) leaks data,
# =cmd|... ran programs): OWASP "CSV injection". Such text cells get a leading ' (shown as text).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: None empty, text a spreadsheet would run prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_page(result: dict[str, Any], what: str, first: date, last: date) -> Response:
    """A page of rows (``ServeContext.page``) as a CSV download; ``X-Next-Offset`` pages on."""
    buf = io.StringIO()
    found: list[dict[str, Any]] = result["rows"]
    writer = csv.writer(buf)
    if found:
        writer.writerow([csv_cell(k) for k in found[0]])
        for r in found:
            writer.writerow([csv_cell(v) for v in r.values()])
    headers = {
        "Content-Disposition": f'attachment; filename="{what}_{first}_{last}.csv"',
        "X-Next-Offset": "" if result["next_offset"] is None else str(result["next_offset"]),
    }
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
