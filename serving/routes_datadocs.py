"""The GX Data Docs of the validation runs, served under ``/datadocs/`` and usable offline.

GX 1.24 renders pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and its
logo from public CDNs; the index even draws its table of validation results with bootstrap-table
from inline data, so without the internet it lists nothing. The files stay as GX wrote them
(``{home}/gx/gx/uncommitted/data_docs/local_site``); HTML and CSS are rewritten as they are
served, so sites built before this module (or by another GX version) work too:

- each CDN asset the pages name becomes its copy vendored from npm at the same version
  (``/static/vendor/<package>@<version>/...``, scripts/vendor_npm.py);
- GX's logo (whose URL carries the data context id) becomes the copy GX puts in the site;
- the site's own static files are named from the site's root (GX gets the depth wrong);
- GX's footers (its newsletter, its tutorials) are hidden;
- any other reference to another host is removed (links to GX's website and newsletter, an
  asset a newer GX might add): a page never makes a request to another host.

The pages need inline scripts (bootstrap-table's data and callbacks, ``onclick`` handlers), and
Vega compiles chart expressions with ``Function``: so they get their own Content-Security-Policy
with ``'unsafe-inline' 'unsafe-eval'`` for scripts, and still ``'self'`` only for everything.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from common.settings import Settings
from serving.context import ServeContext

PREFIX = "/datadocs"
# Where GX's file context (expectations/docs.py) renders its one site.
SITE_PARTS = ("gx", "uncommitted", "data_docs", "local_site")
_SITE_MARKER = "/" + "/".join(SITE_PARTS[2:]) + "/"
VENDOR = "/static/vendor"
LOGO = f"{PREFIX}/static/images/logo-long.png"
MAX_PATH_CHARS = 1024

# Every CDN URL GX 1.24.1 puts in its pages, to the vendored file of the same version. Vega's
# three name only a major version (jsdelivr serves the newest): the newest of that major when
# vendored (2026-12-07), as jsdelivr would have served it.
CDN_ASSETS = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table@1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table@1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9/dist/umd/popper.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}
# Longest first, so a URL is never replaced by the entry of a shorter prefix of it.
_CDN = sorted(CDN_ASSETS.items(), key=lambda kv: -len(kv[0]))
_CDN_RE = re.compile(
    "|".join(re.escape(url) for url, _ in _CDN) + r"(?=[\"'\s)>])"
)  # the whole URL: "…/npm/vega@5" must not match "…/npm/vega@5.1/x.js"
_GX_ASSETS_RE = re.compile(r"https?://great-expectations-web-assets\.[^\"'\s)<>]*")
# The site's own assets are in static/ at its root; GX 1.24 names them relative to the page and
# gets the depth of result pages wrong (../../../ from four folders down: a 404 favicon).
_SITE_STATIC_RE = re.compile(r"([\"'(])(?:\./|(?:\.\./)+)static/")
_FOREIGN = r"(?:https?:)?//[^\"'\s<>]*"
# An attribute that would make the browser load or link another host: dropped whole.
_FOREIGN_ATTR_RE = re.compile(
    r"\s(?:src|href|action|srcset|poster|data|formaction)\s*=\s*"
    r"(?:\"" + _FOREIGN + r"\"|'" + _FOREIGN + r"'|(?:https?:)?//[^\s>]*)",
    re.IGNORECASE,
)
_FOREIGN_CSS_URL_RE = re.compile(
    r"url\(\s*([\"']?)(?:https?:)?//[^\"')]*\1\s*\)", re.IGNORECASE
)  # CSS url(...) to another host: "none" (valid wherever an image is)
_FOREIGN_IMPORT_RE = re.compile(r"@import\s+(?:url\()?\s*[\"']?(?:https?:)?//[^;]*;", re.I)

# GX's two fixed footers (its newsletter; "check out one of these tutorials") only link to its
# website, cover the last rows of a table and make no sense offline: hidden.
HIDE_FOOTERS = "<style>footer { display: none !important; }</style>\n"
_HEAD_END_RE = re.compile(r"</head\s*>", re.IGNORECASE)

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval';"
    " style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
TEXT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8"}


def site_dir(settings: Settings) -> Path:
    """The Data Docs site folder GX renders into."""
    return settings.gx_dir.joinpath(*SITE_PARTS)


def result_url(docs_path: str) -> str:
    """The URL under /datadocs of a stored Data Docs page (``dq.validation_runs.data_docs_url``:
    the page's file path, as ``expectations.docs.build`` returns it, or ``file://`` URL).

    Raises ValueError for a path outside a Data Docs site."""
    path = docs_path.removeprefix("file://").replace("\\", "/")
    _, found, rel = path.partition(_SITE_MARKER)
    if not found or not rel:
        raise ValueError(f"not a Data Docs page: {docs_path!r}")
    return f"{PREFIX}/{quote(rel, safe='/')}"


def rewrite(text: str, *, html: bool = False) -> str:
    """HTML or CSS of a GX page with every URL to another host replaced or removed."""
    if html:
        text = _HEAD_END_RE.sub(lambda m: HIDE_FOOTERS + m.group(0), text, count=1)
    text = _CDN_RE.sub(lambda m: f"{VENDOR}/{CDN_ASSETS[m.group(0)]}", text)
    text = _GX_ASSETS_RE.sub(LOGO, text)
    text = _SITE_STATIC_RE.sub(rf"\1{PREFIX}/static/", text)
    text = _FOREIGN_IMPORT_RE.sub("", text)
    text = _FOREIGN_CSS_URL_RE.sub("none", text)
    return _FOREIGN_ATTR_RE.sub("", text)


class BadPath(ValueError):
    pass


def resolve(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names inside ``root``; None when there is none there. Raises BadPath for
    a path that tries to leave ``root`` (``..``, absolute, NUL, backslash, empty segments).
    Symlinks are followed, and a target outside ``root`` counts as absent."""
    if len(rel) > MAX_PATH_CHARS or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        raise BadPath("malformed path")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
        raise BadPath("malformed path")
    try:
        base = root.resolve(strict=True)
        found = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        return None
    if not found.is_relative_to(base) or not found.is_file():
        return None
    return found


def routes(ctx: ServeContext) -> APIRouter:
    # Pages, not API: out of the OpenAPI spec, as the sign-in page is.
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    root = site_dir(ctx.settings)

    @router.get("")
    @router.get("/")
    def datadocs_home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/index.html", status_code=307, headers=HEADERS)

    @router.get("/{path:path}", response_model=None)
    def datadocs_file(path: str) -> Response:
        """A page or asset of the GX Data Docs (HTML and CSS rewritten to load nothing but
        this server)."""
        try:
            found = resolve(root, path)
        except BadPath as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=HEADERS)
        if found is None:
            what = "Data Docs not built yet" if not root.is_dir() else "no such Data Docs file"
            return JSONResponse({"error": what}, status_code=404, headers=HEADERS)
        suffix = found.suffix.lower()
        if suffix in TEXT_TYPES:
            try:
                text = found.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return JSONResponse({"error": "no such Data Docs file"}, 404, headers=HEADERS)
            body = rewrite(text, html=suffix == ".html")
            return Response(body, media_type=TEXT_TYPES[suffix], headers=HEADERS)
        media = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return FileResponse(found, media_type=media, headers=HEADERS)

    return router
