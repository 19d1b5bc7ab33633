"""The pages of ``citypipe serve`` for people: the operations-centre dashboard at ``/``
(docs/serving.md, "Dashboard"). The page is static (HTML, JS, CSS under serving/static/dashboard);
it reads the data from /api/v1 with the browser's session cookie, so no data is ever put into
the HTML on the server."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from serving.context import ServeContext

DASHBOARD = Path(__file__).parent / "static" / "dashboard" / "index.html"


def routes(ctx: ServeContext) -> APIRouter:
    """``GET /``: the dashboard (behind a session like every page; see serving/session.py)."""
    del ctx  # the page fetches its data from the API itself
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def dashboard() -> FileResponse:
        # no-cache: a new release's page is picked up at once; the assets are small.
        return FileResponse(
            DASHBOARD, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
        )

    return router
