"""Headless Chromium for the page tests (Debian's /usr/bin/chromium driven by Playwright).

``chromium`` (session) is the browser; ``page_watch`` opens a fresh context and records what a
page test must check: console errors, uncaught page errors, and every request to a host other
than the server's. ``screenshot(page, name)`` saves a PNG under ``$CITYPIPE_TEST_ARTIFACTS``
(default ``test-artifacts/`` at the repo root), which CI keeps as the test artifacts.

Without Chromium the tests skip with the reason, or fail when CITYPIPE_REQUIRE_CHROMIUM=1
(.ci/run sets it and installs Debian's chromium). Playwright's own browser download is never
used: it cannot reach its CDN here, and the system browser is the one CI installs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from common.settings import REPO_ROOT

CHROMIUM = os.environ.get("CITYPIPE_CHROMIUM", "/usr/bin/chromium")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CITYPIPE_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG of ``page`` as a test artifact; returns its path."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Watch:
    """What a page did: console errors, page errors, requests to other hosts."""

    server_host: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        url = request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.netloc != self.server_host:
            self.foreign_requests.append(url)

    def assert_clean(self) -> None:
        assert not self.foreign_requests, f"requests to other hosts: {self.foreign_requests}"
        assert not self.page_errors, f"uncaught errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CITYPIPE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"CITYPIPE_REQUIRE_CHROMIUM=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def open_page(chromium: Any, base_url: str, **context_args: Any) -> tuple[Any, Any, Watch]:
    """A new context and page on ``base_url`` with a Watch attached; close the context after."""
    context = chromium.new_context(base_url=base_url, **context_args)
    page = context.new_page()
    watch = Watch(server_host=urlsplit(base_url).netloc)
    watch.attach(page)
    return context, page, watch


def sign_in(page: Any, key: str, next_path: str = "/") -> None:
    """Through the real sign-in form (serving/session.py), as a person would."""
    page.goto(f"/login?next={next_path}")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
