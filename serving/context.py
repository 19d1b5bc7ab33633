"""What every route module of the API gets: the settings, the warehouse source and the small
read helpers. A module of routes exposes ``def routes(ctx: ServeContext) -> APIRouter`` and
``serving/app.py`` includes it, so features add endpoints without editing one big function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from common.catalogue import Catalogue
from common.settings import Settings
from serving.source import Source


@dataclass(frozen=True)
class ServeContext:
    settings: Settings
    source: Source
    catalogue: Catalogue
    tz: ZoneInfo
    # rows(sql_file, params): the records of one query of serving/sql (NotReady -> 503)
    rows: Callable[[str, dict[str, Any]], list[dict[str, Any]]]
    # page(sql_file, params, limit, offset): {"count", "limit", "offset", "next_offset", "rows"}
    page: Callable[[str, dict[str, Any], int, int], dict[str, Any]]
    # lookup(sql_file): rows of a parameterless query, cached a few seconds (validation lists)
    lookup: Callable[[str], list[dict[str, Any]]]
    # site_param(value, feed): a known site id of the catalogue (400/404 otherwise) or None
    site_param: Callable[..., str | None]
    # today(): the local natural day now
    today: Callable[[], date]

    @property
    def api_prefix(self) -> str:
        return "/api/v1"
