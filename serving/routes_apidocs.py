"""``/docs``: Swagger UI over ``/openapi.json``, offline.

FastAPI's own /docs loads Swagger UI from a CDN and starts it with an inline script; the
Content-Security-Policy (serving/app.py) forbids both. Here the assets are the vendored
``swagger-ui-dist`` (scripts/vendor_npm.py) and the start-up is a script file
(``static/apidocs/init.js``). A browser reaches /docs after signing in (/login); the session
cookie then authenticates the spec and "Try it out".
"""

from __future__ import annotations

import html
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from serving.context import ServeContext

SWAGGER_UI = "swagger-ui-dist@5.36.0"
VENDOR_URL = f"/static/vendor/{SWAGGER_UI}"
OPENAPI_URL = "/openapi.json"


def page() -> str:
    template = files("serving").joinpath("static/apidocs/index.html").read_text(encoding="utf-8")
    return template.replace("{{vendor}}", html.escape(VENDOR_URL)).replace(
        "{{openapi_url}}", html.escape(OPENAPI_URL)
    )


def routes(ctx: ServeContext) -> APIRouter:
    """``GET /docs``."""
    del ctx  # the page holds no data; the spec is fetched by the browser
    router = APIRouter(include_in_schema=False)
    body = page()

    @router.get("/docs")
    def api_docs() -> HTMLResponse:
        return HTMLResponse(body)

    return router
