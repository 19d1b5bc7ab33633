"""Browser sessions for the pages (dashboard, quality report, API docs).

A browser cannot send ``X-API-Key`` when it navigates, so a person signs in once at ``/login``
with an API key and gets a session cookie: HttpOnly (scripts never see it), SameSite=Strict (no
other site can make the browser use it), signed with a secret made when the server starts (a
restart signs everyone out; nothing is stored). The key itself is never put in a cookie, a URL
or the page. Programs keep using the header; a key in the query string is not accepted.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from importlib.resources import files
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from serving.context import ServeContext
from serving.keys import key_matches

COOKIE = "citypipe_session"
SESSION_S = 12 * 3600
# Paths a browser needs before it has a session.
PUBLIC_PATHS = frozenset(
    {"/health", "/login", "/static/login.css", "/static/favicon.svg", "/favicon.ico"}
)
MAX_FORM_BYTES = 4096


# Signed-out sessions remembered until they expire; past this many (only a flood of sign-ins
# and sign-outs, which the rate limit slows) the ones nearest their expiry are forgotten first.
MAX_REVOKED = 100_000


@dataclass
class Signer:
    """Signs and checks session tokens ``<expiry>.<nonce>.<hmac>``; remembers signed-out ones."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # nonce -> expiry of sessions signed out before they expired (a copied cookie stays dead).
    _revoked: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def issue(self, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + SESSION_S)
        body = f"{expiry}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str | None, now: float | None = None) -> bool:
        if not token or len(token) > 200:
            return False
        body, _, mac = token.rpartition(".")
        expiry_text, _, nonce = body.partition(".")
        if not expiry_text.isdigit() or not hmac.compare_digest(mac, self._mac(body)):
            return False
        if nonce in self._revoked:
            return False
        return int(expiry_text) > (now if now is not None else time.time())

    def revoke(self, token: str | None, now: float | None = None) -> bool:
        """Sign a session out on the server too: ``valid`` refuses it from now on. Returns
        whether ``token`` was a live session."""
        now = now if now is not None else time.time()
        if not self.valid(token, now):
            return False
        assert token is not None
        expiry_text, _, rest = token.partition(".")
        nonce = rest.rpartition(".")[0]
        with self._lock:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
            if len(self._revoked) >= MAX_REVOKED:
                for n, _e in sorted(self._revoked.items(), key=lambda kv: kv[1])[
                    : len(self._revoked) - MAX_REVOKED + 1
                ]:
                    del self._revoked[n]
            self._revoked[nonce] = int(expiry_text)
        return True

    def _mac(self, body: str) -> str:
        return hmac.new(self.secret, body.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(c in target for c in "\r\n\t") or len(target) > 500:
        return "/"
    return target


def login_redirect(path: str, query: str) -> Response:
    target = path + (f"?{query}" if query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(target), safe='/')}", status_code=303)


@functools.cache
def _asset(name: str) -> bytes:
    """A file of serving/static, read once (not at import: no I/O then)."""
    return files("serving").joinpath("static", name).read_bytes()


def _page(next_path: str, failed: bool) -> str:
    template = _asset("login.html").decode("utf-8")
    message = (
        '<p class="error" role="alert"><span lang="zh">密钥无效。</span>'
        ' <span lang="en">That key is not valid.</span></p>'
        if failed
        else ""
    )
    return template.replace("{{next}}", html.escape(next_path, quote=True)).replace(
        "{{message}}", message
    )


def routes(ctx: ServeContext, keys: tuple[str, ...]) -> APIRouter:
    """``GET /login`` (the form), ``POST /login`` (key -> cookie), ``POST /logout``."""
    del ctx  # sessions need no data, only the keys and the signer on app.state
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form(next: str | None = None) -> HTMLResponse:
        return HTMLResponse(_page(safe_next(next), failed=False))

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        form = parse_qs(body, max_num_fields=4)
        given = (form.get("key") or [""])[0].strip()
        target = safe_next((form.get("next") or ["/"])[0])
        if not key_matches(given or None, keys):
            return HTMLResponse(_page(target, failed=True), status_code=401)
        response = RedirectResponse(target, status_code=303)
        signer: Signer = request.app.state.signer
        response.set_cookie(
            COOKIE,
            signer.issue(),
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.get("/favicon.ico")
    def favicon() -> Response:
        # Browsers ask for it on every page; answering saves a 404 in every console.
        return Response(_asset("favicon.svg"), media_type="image/svg+xml")

    @router.post("/logout")
    def logout(request: Request) -> Response:
        # Also on the server: a copy of the cookie (another tab, a stolen one) dies with it.
        signer: Signer = request.app.state.signer
        signer.revoke(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router
