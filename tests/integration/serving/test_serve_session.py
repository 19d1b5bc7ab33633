"""Browser sessions (serving/session.py) on the real `citypipe serve` process: a page without a
session redirects to /login, a key signs in once and the cookie then opens pages and the API,
nothing else does (a wrong or tampered cookie, a key in the query string, an open redirect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import open_page, screenshot, sign_in
from support.serving_helpers import API_KEY, serving

from common.settings import Settings
from serving.session import COOKIE

pytestmark = [pytest.mark.integration]

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_a_key_signs_a_browser_in_and_nothing_else_does(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path) as server, server.client(key=None) as anon:
        # A page without a session: to the sign-in form, remembering where it was going.
        page = anon.get("/docs", headers=HTML)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/docs"
        # The API never redirects: a program gets a 401 it can read.
        api = anon.get("/api/v1/sites", headers=HTML)
        assert api.status_code == 401 and "API key" in api.json()["error"]
        # The form and its style are public; nothing else is.
        form = anon.get("/login?next=/docs")
        assert form.status_code == 200 and 'name="next" value="/docs"' in form.text
        assert anon.get("/static/login.css").status_code == 200
        assert anon.get("/static/login.html").status_code == 401
        # A key in the query string is not a key.
        for name in ("key", "api_key", "X-API-Key", "token"):
            assert anon.get("/api/v1/sites", params={name: API_KEY}).status_code == 401

        wrong = anon.post("/login", data={"key": API_KEY[:-1] + "x", "next": "/docs"})
        assert wrong.status_code == 401 and COOKIE not in wrong.cookies
        assert "密钥无效" in wrong.text
        # A next that leaves the server is dropped.
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            moved = anon.post("/login", data={"key": API_KEY, "next": target})
            assert moved.status_code == 303 and moved.headers["location"] == "/"

        signed = anon.post("/login", data={"key": API_KEY, "next": "/docs"})
        assert signed.status_code == 303 and signed.headers["location"] == "/docs"
        cookie_header = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie_header and "SameSite=strict" in cookie_header
        token = signed.cookies[COOKIE]
        assert API_KEY not in token  # the key never travels in the cookie

        with server.client(key=None, cookies={COOKIE: token}) as browser:
            assert browser.get("/api/v1/sites").status_code == 200
            assert browser.get("/static/login.html").status_code == 200
            out = browser.post("/logout")
            assert out.status_code == 303 and 'citypipe_session=""' in out.headers["set-cookie"]
        # A copy of the signed-out cookie (another tab, a stolen one) is dead on the server too.
        with server.client(key=None, cookies={COOKIE: token}) as copy:
            assert copy.get("/api/v1/sites").status_code == 401
        expiry, nonce, mac = token.split(".")
        for forged in (
            f"{int(expiry) + 999}.{nonce}.{mac}",  # a longer session
            f"{expiry}.{nonce}.{'0' * len(mac)}",
            "",
            "x" * 300,
        ):
            with server.client(key=None, cookies={COOKIE: forged}) as faker:
                assert faker.get("/api/v1/sites").status_code == 401, forged

        # Every answer carries the security headers, error or not.
        for response in (anon.get("/health"), api, form):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_the_sign_in_page_works_in_chromium_offline(
    settings: Settings, tmp_path: Path, chromium: Any
) -> None:
    with serving(settings, tmp_path) as server:
        context, page, watch = open_page(chromium, server.url)
        try:
            page.goto("/api/v1/sites")  # an API path in a browser: 401 JSON, no redirect
            assert "API key" in page.content()
            page.goto("/login?next=/api/v1/sites")
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            screenshot(page, "login")
            page.fill("#key", "not-the-key-0123456789")
            page.click("button[type=submit]")
            assert "密钥无效" in page.content()
            sign_in(page, API_KEY, "/api/v1/sites")
            assert '"site_id"' in page.content()
            cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            # The failed sign-in answered 401: Chromium logs that as a console error.
            watch.console_errors = [e for e in watch.console_errors if "401" not in e]
            watch.assert_clean()
        finally:
            context.close()
