"""The FastAPI application of ``citypipe serve`` (docs/serving.md): read-only, versioned under
/api/v1, every path but /health behind an API key."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio.to_thread
import duckdb
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from alerts.store import read_open, read_recent, store_path
from common.catalogue import FEEDS, Catalogue, Site, load_catalogue
from common.settings import Settings
from serving import (
    SQL,
    routes_apidocs,
    routes_datadocs,
    routes_live,
    routes_pages,
    routes_published,
    routes_quality,
    session,
)
from serving.context import ServeContext
from serving.keys import key_matches, load_keys, presented_key
from serving.params import (
    MAX_HOURLY_RANGE_DAYS,
    MAX_OFFSET,
    MAX_PAGE_ROWS,
    BadParameter,
    choice,
    date_range,
    identifier,
    known,
    parse_date,
)
from serving.ratelimit import RateLimited, RateLimiter, retry_after
from serving.responses import (
    API_ERRORS,
    CSV_OR_JSON,
    Alerts,
    Error,
    GoodDays,
    Health,
    KpiIds,
    KpiPage,
    Pack,
    Page,
    Ready,
    RecentAlerts,
    Rows,
    Sites,
    csv_page,
)
from serving.source import NotReady, Source
from transforms.registry import KPIS

log = logging.getLogger(__name__)

API_VERSION = "v1"
STATIC_DIR = Path(__file__).parent / "static"
LEVELS = ("county", "district", "site")
WATER_PERIODS = ("day", "month", "year")
FORMATS = ("json", "csv")
# JSON columns handed back as JSON, not as a string holding JSON.
JSON_COLUMNS = frozenset({"details", "main_pollutants_json"})
MAX_ALERT_HOURS = 24 * 366
LOOKUP_TTL_S = 5.0

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
DateText = Annotated[str | None, Query(description="YYYY-MM-DD (local natural day)")]
IdText = Annotated[str | None, Query(max_length=200)]


def create_app(settings: Settings, source: Source | None = None, threads: int = 8) -> FastAPI:
    """The app. Raises :class:`serving.keys.NoApiKeys` when no key is configured.

    ``threads``: how many requests read the database at once (FastAPI runs the blocking
    endpoints in anyio's thread pool; DuckDB releases the GIL while a query runs)."""
    keys = load_keys(settings)
    src = source or Source(settings)
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    tz = ZoneInfo(settings.timezone)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        src.start()
        try:
            yield
        finally:
            src.close()

    app = FastAPI(
        title="citypipe API",
        version=API_VERSION,
        description=(
            "Read-only KPIs, station values, data quality and alerts of a county's city brain."
            " Every path but /health needs an API key: header `X-API-Key: <key>` or"
            " `Authorization: Bearer <key>`."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # /docs: serving/routes_apidocs.py (offline)
    )
    app.state.source = src

    app.state.signer = session.Signer()
    app.state.limiter = RateLimiter(settings.serve_rate_limit_per_min, settings.serve_rate_burst)
    app.add_middleware(RequireKey, keys=keys, signer=app.state.signer, limiter=app.state.limiter)
    # Page assets (no data in them; still behind the key or a session but the sign-in style).
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    _install_error_handlers(app)

    def today() -> date:
        return datetime.now(tz).date()

    def rows(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with src.cursor() as cur:
            try:
                return _records(SQL.run(cur, name, params))
            except duckdb.CatalogException as exc:
                # A warehouse loaded but never run through the KPIs (or a table of a newer
                # migration): the data is not there yet, which is a 503, not a server error.
                raise NotReady(f"not in the warehouse yet ({str(exc).splitlines()[0]})") from None

    # Lists that only validate parameters (KPI ids, pack dimensions) are read again at most
    # every LOOKUP_TTL_S: two fewer queries per KPI request (a new KPI id 404s for that long).
    lookups: dict[str, tuple[float, list[dict[str, Any]]]] = {}
    lookups_lock = threading.Lock()

    def lookup(name: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        with lookups_lock:
            hit = lookups.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = rows(name, {})
        with lookups_lock:
            lookups[name] = (now + LOOKUP_TTL_S, found)
        return found

    def page(name: str, params: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
        found = rows(name, {**params, "limit": limit, "offset": offset})
        return {
            "count": len(found),
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if len(found) == limit else None,
            "rows": found,
        }

    def site_param(value: str | None, feed: str | None = None) -> str | None:
        ids = frozenset(s.site_id for s in catalogue.sites.values() if feed in (None, s.feed))
        return known(value, ids, "site_id", f"{feed + ' ' if feed else ''}site")

    api = APIRouter(prefix=f"/api/{API_VERSION}", responses=API_ERRORS)
    ctx = ServeContext(
        settings=settings,
        source=src,
        catalogue=catalogue,
        tz=tz,
        rows=rows,
        page=page,
        lookup=lookup,
        site_param=site_param,
        today=today,
    )
    app.state.ctx = ctx

    @app.get("/health", tags=["service"], response_model=Health)
    def health() -> dict[str, str]:
        """Liveness: the process answers. No key needed; says nothing about the data."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["service"],
        responses={200: {"model": Ready}, 401: {"model": Error}, 503: {"model": Ready}},
    )
    def ready() -> JSONResponse:
        """Readiness: the warehouse is readable; when it last loaded and last ran the KPIs."""
        try:
            found = rows("select_last_load.sql", {})[0]
        except (NotReady, duckdb.Error) as exc:
            body = {"ready": False, "error": f"warehouse not readable: {exc}", **src.describe()}
            return JSONResponse(jsonable_encoder(body), status_code=503)
        try:
            found |= rows("select_last_kpi_run.sql", {})[0]
        except NotReady:  # loaded, but the KPIs never ran: readable all the same
            found |= {"last_kpi_run_at": None, "last_kpi_day": None}
        return JSONResponse(jsonable_encoder({"ready": True, **found, **src.describe()}))

    # -- KPIs ------------------------------------------------------------------------------

    @api.get("/kpis", tags=["kpis"], response_model=KpiIds)
    def kpi_ids() -> dict[str, Any]:
        """The KPI ids in the pack (see docs/kpis.md), with their unit and days covered."""
        return {"feeds": sorted(KPIS), "kpis": rows("select_kpi_ids.sql", {})}

    @api.get("/kpis/{kpi_id}", tags=["kpis"], response_model=KpiPage)
    def kpi_values(
        kpi_id: str,
        start: DateText = None,
        end: DateText = None,
        dimension: IdText = None,
        level: Annotated[str | None, Query(description="county, district or site")] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Values of one KPI (an id such as `air.aqi`, or a feed prefix such as `air`) over a
        date range (default: the last 7 days), for one dimension or a level of them."""
        kid = identifier(kpi_id, "kpi_id")
        assert kid is not None
        ids = {r["kpi_id"] for r in lookup("select_kpi_ids.sql")}
        if kid not in ids and kid not in KPIS:
            raise BadParameter("kpi_id", f"unknown KPI id {kid!r}", status=404)
        first, last = date_range(start, end, today=today(), default_days=7)
        lvl = choice(level, LEVELS, "level")
        present = {r["dimension"] for r in lookup("select_dimensions.sql")}
        dim = known(dimension, frozenset(present) | {"county"}, "dimension", "dimension")
        dims = _dimensions(dim, lvl, present, catalogue)
        params = {"start_date": first, "end_date": last, "kpi_id": kid, "dimensions": dims}
        return {
            "kpi_id": kid,
            "start": first,
            "end": last,
            **page("select_kpi_values.sql", params, limit, offset),
        }

    @api.get("/pack/latest", tags=["kpis"], response_model=Pack)
    def pack_latest(as_of: DateText = None) -> dict[str, Any]:
        """The newest day's whole KPI pack (on or before `as_of`)."""
        as_of_date = parse_date(as_of, "as_of") if as_of is not None else None
        last = rows("select_last_pack_date.sql", {"as_of_date": as_of_date})[0]["last_date"]
        if last is None:
            return {"date": None, "count": 0, "kpis": []}
        kpis = rows("select_pack.sql", {"local_date": last})
        return {"date": last, "count": len(kpis), "kpis": kpis}

    @api.get("/pack/{day}", tags=["kpis"], response_model=Pack)
    def pack_of_day(day: str) -> dict[str, Any]:
        """The whole KPI pack of one day (`citypipe kpis --date`)."""
        local_date = parse_date(day, "day")
        kpis = rows("select_pack.sql", {"local_date": local_date})
        return {"date": local_date, "count": len(kpis), "kpis": kpis}

    @api.get("/restatements", tags=["kpis"], response_model=Page)
    def restatements(
        start: DateText = None,
        end: DateText = None,
        kpi_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Published values that changed (kpi.restatements), for days in the range (default:
        the last 31 days)."""
        first, last = date_range(start, end, today=today(), default_days=31)
        params = {"start_date": first, "end_date": last, "kpi_id": identifier(kpi_id, "kpi_id")}
        return page("select_restatements.sql", params, limit, offset)

    @api.get("/air/good-days", tags=["air"], response_model=GoodDays)
    def good_days(as_of: DateText = None) -> dict[str, Any]:
        """Good-days ratio year to date against the target (96 %) and the remaining budget of
        non-good days this year, as of the newest computed day (on or before `as_of`)."""
        as_of_date = parse_date(as_of, "as_of") if as_of is not None else None
        found = rows("select_good_days.sql", {"as_of_date": as_of_date})
        return {"good_days": found[0] if found else None}

    # -- station and feed values ------------------------------------------------------------

    @api.get("/air/stations/daily", tags=["air"], response_model=Page)
    def air_station_daily(
        start: DateText = None,
        end: DateText = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Stations' daily values: concentrations, AQI, category, primary pollutants, validity."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {"start_date": first, "end_date": last, "site_id": site_param(site_id, "air")}
        return page("select_air_daily_station.sql", params, limit, offset)

    @api.get("/air/stations/hourly", tags=["air"], response_model=Page)
    def air_station_hourly(
        start: DateText = None,
        end: DateText = None,
        site_id: Annotated[
            str | None, Query(max_length=200, description="a station or 'county'")
        ] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Hourly values of the stations and of the county (`site_id=county`)."""
        first, last = date_range(
            start, end, today=today(), default_days=1, max_days=MAX_HOURLY_RANGE_DAYS
        )
        scope = "county" if site_id == "county" else site_param(site_id, "air")
        params = {"start_date": first, "end_date": last, "scope": scope}
        return page("select_air_hourly.sql", params, limit, offset)

    @api.get("/water/sections", tags=["water"], response_model=Page)
    def water_sections(
        start: DateText = None,
        end: DateText = None,
        period: Annotated[str | None, Query(description="day, month or year (to date)")] = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Section and drinking-source classes (GB 3838), per day or period to date."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "period": choice(period, WATER_PERIODS, "period"),
            "site_id": site_param(site_id, "water"),
        }
        return page("select_water_sections.sql", params, limit, offset)

    @api.get("/water/items", tags=["water"], response_model=Page)
    def water_items(
        start: DateText = None,
        end: DateText = None,
        period: Annotated[str | None, Query(description="day, month or year (to date)")] = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Item values and classes per section."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "period": choice(period, WATER_PERIODS, "period"),
            "site_id": site_param(site_id, "water"),
        }
        return page("select_water_items.sql", params, limit, offset)

    @api.get("/waterlogging/events", tags=["waterlogging"], response_model=Page)
    def waterlogging_events(
        start: DateText = None,
        end: DateText = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Waterlogging events that started on the days of the range (default: today)."""
        first, last = date_range(start, end, today=today(), default_days=1)
        params = {"start_date": first, "end_date": last, "site_id": site_param(site_id)}
        return page("select_waterlogging_events.sql", params, limit, offset)

    @api.get("/waterlogging/depths", tags=["waterlogging"], response_model=Rows)
    def waterlogging_depths(site_id: IdText = None) -> dict[str, Any]:
        """The current depth of each point: its newest valid reading in the warehouse."""
        found = rows(
            "select_waterlogging_depths.sql", {"site_id": site_param(site_id, "waterlogging")}
        )
        return {"count": len(found), "rows": found}

    @api.get("/traffic/tpi", tags=["traffic"], response_model=Page)
    def traffic_tpi(
        start: DateText = None,
        end: DateText = None,
        district: IdText = None,
        hour: Annotated[int | None, Query(ge=0, le=23, description="local hour start")] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Hourly TPI by scope: `county`, `old_town`, `other_districts` or a district."""
        first, last = date_range(
            start, end, today=today(), default_days=1, max_days=MAX_HOURLY_RANGE_DAYS
        )
        scopes = {"county", "old_town", "other_districts"} | {
            s.district for s in catalogue.by_feed("traffic") if s.district
        }
        params = {
            "start_date": first,
            "end_date": last,
            "scope": known(district, frozenset(scopes), "district", "district"),
            "hour": hour,
        }
        return page("select_traffic_hourly.sql", params, limit, offset)

    @api.get("/sites", tags=["catalogue"], response_model=Sites)
    def sites(
        feed: Annotated[str | None, Query(description="air, water, waterlogging, traffic")] = None,
    ) -> dict[str, Any]:
        """The site catalogue (reference/sites/{city})."""
        f = choice(feed, FEEDS, "feed")
        found = [_site(s) for s in catalogue.sites.values() if f in (None, s.feed)]
        return {
            "city": catalogue.city_id,
            "timezone": catalogue.timezone,
            "count": len(found),
            "sites": found,
        }

    # -- data quality ---------------------------------------------------------------------

    @api.get("/quality/days", tags=["quality"], response_model=Page)
    def quality_days(
        start: DateText = None,
        end: DateText = None,
        feed: IdText = None,
        site_id: IdText = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Per day, feed and site: readings expected, received, accepted; flagged by
        expectation; quarantined by reason; completeness; silent and flat-lined sensors."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "feed": choice(feed, FEEDS, "feed"),
            "site_id": site_param(site_id, feed if feed in FEEDS else None),
        }
        return page("select_quality_days.sql", params, limit, offset)

    @api.get("/quality/flagged", tags=["quality"], response_model=None, responses=CSV_OR_JSON)
    def quality_flagged(
        start: DateText = None,
        end: DateText = None,
        feed: IdText = None,
        site_id: IdText = None,
        expectation: IdText = None,
        format: Annotated[str, Query(description="json or csv")] = "json",
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any] | Response:
        """Flagged readings (one row per reading and failed expectation), paged; also CSV."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "feed": choice(feed, FEEDS, "feed"),
            "site_id": site_param(site_id),
            "expectation": identifier(expectation, "expectation"),
        }
        fmt = choice(format, FORMATS, "format")
        result = page("select_flagged_readings.sql", params, limit, offset)
        return csv_page(result, "flagged", first, last) if fmt == "csv" else result

    @api.get("/quality/quarantined", tags=["quality"], response_model=None, responses=CSV_OR_JSON)
    def quality_quarantined(
        start: DateText = None,
        end: DateText = None,
        feed: IdText = None,
        site_id: IdText = None,
        reason: IdText = None,
        format: Annotated[str, Query(description="json or csv")] = "json",
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> dict[str, Any] | Response:
        """Quarantined messages and readings by the day received, paged; also CSV."""
        first, last = date_range(start, end, today=today(), default_days=7)
        params = {
            "start_date": first,
            "end_date": last,
            "feed": choice(feed, FEEDS, "feed"),
            "site_id": identifier(site_id, "site_id"),  # may be unknown: that is why it is here
            "reason": identifier(reason, "reason"),
        }
        fmt = choice(format, FORMATS, "format")
        result = page("select_quarantined.sql", params, limit, offset)
        return csv_page(result, "quarantined", first, last) if fmt == "csv" else result

    # -- alerts ---------------------------------------------------------------------------

    @api.get("/alerts/active", tags=["alerts"], response_model=Alerts)
    def alerts_active() -> dict[str, Any]:
        """Alerts open now, oldest first (the `citypipe alerts` service's store)."""
        found = _alerts(lambda path: read_open(path), settings)
        return {"count": len(found), "alerts": found}

    @api.get("/alerts/recent", tags=["alerts"], response_model=RecentAlerts)
    def alerts_recent(
        hours: Annotated[int, Query(ge=1, le=MAX_ALERT_HOURS, description="look-back")] = 24,
        limit: Limit = 1000,
    ) -> dict[str, Any]:
        """Alerts open now or cleared in the last `hours`, newest first."""
        since = datetime.now(UTC) - timedelta(hours=hours)
        found = _alerts(lambda path: read_recent(path, since, limit), settings)
        return {"since": since, "count": len(found), "alerts": found}

    app.include_router(api)
    # Feature modules: each adds its routes from the context (serving/context.py).
    app.include_router(session.routes(ctx, keys))
    app.include_router(routes_apidocs.routes(ctx))
    app.include_router(routes_datadocs.routes(ctx))
    app.include_router(routes_published.routes(ctx))
    app.include_router(routes_live.routes(ctx))
    app.include_router(routes_quality.routes(ctx))
    app.include_router(routes_pages.routes(ctx))
    _document_auth_and_limit(app)
    return app


def _document_auth_and_limit(app: FastAPI) -> None:
    """The spec names what the middleware does: the key (header or Bearer) on every path but
    /health, and the 429 of the rate limit (so Swagger UI shows "Authorize", clients see both)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = generate()
        components = spec.setdefault("components", {})
        components.setdefault("schemas", {})["RateLimited"] = RateLimited.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["securitySchemes"] = {
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
        spec["security"] = [{"ApiKeyHeader": []}, {"Bearer": []}]
        limited = {
            "description": "too many requests (docs/serving.md, Rate limit)",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "s"}},
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/RateLimited"}}
            },
        }
        for path, methods in spec.get("paths", {}).items():
            for operation in methods.values():
                if path == "/health":
                    operation["security"] = []  # public, and never limited
                    continue
                operation.setdefault("responses", {}).setdefault("429", limited)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


class RequireKey:
    """ASGI middleware: every HTTP path but the public ones (/health, the sign-in page) needs a
    valid key in a header, or a browser session cookie (serving/session.py); 401 otherwise, or
    for a browser navigating to a page, a redirect to /login. Every path but /health is rate
    limited per caller (serving/ratelimit.py): 429 past the limit. Every response gets the
    security headers. Plain ASGI rather than @app.middleware("http"), which costs a task and a
    stream per request."""

    def __init__(
        self,
        app: ASGIApp,
        keys: tuple[str, ...],
        signer: session.Signer,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.signer = signer
        self.limiter = limiter if limiter is not None else RateLimiter(0, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed, caller = self._caller(scope)
        if scope["path"] != "/health":
            wait_s = self.limiter.take(caller)
            if wait_s > 0:
                await _secured(self._too_many(wait_s))(scope, receive, send)
                return
        if scope["path"] not in session.PUBLIC_PATHS and not allowed:
            headers = Headers(scope=scope)
            page = scope["method"] == "GET" and "text/html" in headers.get("accept", "")
            if page and not scope["path"].startswith("/api/"):
                query = scope.get("query_string", b"").decode("latin-1")
                response = session.login_redirect(scope["path"], query)
            else:
                response = JSONResponse(
                    {"error": "missing or invalid API key (X-API-Key or Authorization: Bearer)"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            await _secured(response)(scope, receive, send)
            return
        await self.app(scope, receive, _secured_send(send))

    def _caller(self, scope: Scope) -> tuple[bool, str]:
        """Whether the request is authenticated, and whose bucket it takes from: its key's,
        its session's, or (neither: a wrong key, the sign-in form) its client address's."""
        headers = Headers(scope=scope)
        given = presented_key(headers.get("x-api-key"), headers.get("authorization"))
        if given is not None:
            if key_matches(given, self.keys):
                # A digest: the key itself is never kept in the limiter's memory.
                return True, "key:" + hashlib.sha256(given.encode("utf-8")).hexdigest()
        else:
            token = _cookie(headers.get("cookie", ""), session.COOKIE)
            if self.signer.valid(token):
                return True, f"session:{token}"
        client = scope.get("client")
        return False, f"ip:{client[0] if client else '-'}"

    def _too_many(self, wait_s: float) -> Response:
        after_s = retry_after(wait_s)
        limiter = self.limiter
        body = {
            "error": (
                f"too many requests: at most {limiter.rate_per_s * 60:g} a minute with bursts"
                f" of {limiter.burst}; ask again in {after_s} s"
            ),
            "retry_after_s": after_s,
        }
        return JSONResponse(body, status_code=429, headers={"Retry-After": str(after_s)})


# Sent with every response. Pages may set their own Content-Security-Policy (the GX Data Docs
# need inline scripts); the default allows nothing but this server.
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; font-src 'self' data:;"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _secured_send(send: Send) -> Send:
    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in SECURITY_HEADERS.items()
                if k.encode("latin-1") not in present
            ]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _dimensions(
    dimension: str | None, level: str | None, present: set[str], catalogue: Catalogue
) -> list[str] | None:
    """The dimension values a KPI request covers (None: all)."""
    if dimension is not None:
        if level is not None and dimension not in (
            _dimensions(None, level, present, catalogue) or []
        ):
            return []
        return [dimension]
    if level is None:
        return None
    if level == "county":
        return ["county"]
    sites = set(catalogue.sites)
    if level == "site":
        return sorted(present & sites)
    return sorted(present - sites - {"county"})


def _records(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    out = []
    for row in cur.fetchall():
        rec = dict(zip(names, row, strict=True))
        for col in JSON_COLUMNS.intersection(rec):
            if isinstance(rec[col], str):
                rec[col] = json.loads(rec[col])
        for col, value in rec.items():
            if isinstance(value, Decimal):  # a number in JSON, not the string pydantic makes
                rec[col] = float(value)
        out.append(rec)
    return out


def _site(site: Site) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "feed": site.feed,
        "kind": site.kind,
        "name_en": site.name_en,
        "name_zh": site.name_zh,
        "lat": site.lat,
        "lon": site.lon,
        "period_s": site.period_s,
        "district": site.district,
        "valid_from": site.valid_from,
        "attrs": {k: v for k, v in site.attrs.items() if k != "device_ids"},
    }


def _alerts(read: Callable[[Any], Iterable[Any]], settings: Settings) -> list[dict[str, Any]]:
    path = store_path(settings.home)
    if not path.exists():
        return []  # the alert service has not run here yet
    try:
        return [asdict(a) for a in read(path)]
    except sqlite3.Error as exc:
        raise NotReady(f"alert store {path.name} not readable now: {exc}") from None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadParameter)
    async def bad_parameter(_: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse({"error": exc.message, "parameter": exc.name}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"parameter": ".".join(str(p) for p in e.get("loc", ())[1:]), "error": e.get("msg")}
            for e in exc.errors()
        ]
        text = "; ".join(f"{p['parameter']}: {p['error']}" for p in problems)
        return JSONResponse({"error": text, "problems": problems}, status_code=422)

    @app.exception_handler(NotReady)
    async def not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback here; the client gets an id to quote, never the traceback.
        incident = uuid.uuid4().hex[:12]
        log.error("unexpected error %s on %s", incident, request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": "internal error; the server log has the details", "incident": incident},
            status_code=500,
        )
