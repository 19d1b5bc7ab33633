"""The GX Data Docs of real validation runs (the ingest DAG's steps, build_data_docs included),
served by the real `citypipe serve` under /datadocs/ and opened in headless Chromium: the index
lists every run, a result page is styled by the vendored Bootstrap and Font Awesome, and nothing
is requested from another host. Paths that try to leave the site get a 4xx."""

from __future__ import annotations

import http.client
import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from support.browser import open_page, screenshot, sign_in
from support.serving_helpers import API_KEY, FEEDS, land_day, serving

from common.settings import Settings
from serving.routes_datadocs import result_url, site_dir
from steps.ingest import Found, build_data_docs, load_feed, validate_feed
from warehouse import db
from warehouse.ledger import discover_new_files

pytestmark = [pytest.mark.integration]

DAYS = (date(2026, 11, 30), date(2026, 12, 1))
INDEX_ROWS = "#section-1-content-block-2-1-body-table tbody tr"
# Bootstrap 4.3.1's .btn-secondary; a browser's own button is not this grey.
BOOTSTRAP_SECONDARY = "rgb(108, 117, 125)"
NAMESPACES = re.compile(r"https?://www\.w3\.org/")
LINKS = re.compile(r"""(?:src|href)=["']([^"'{}]+)["']|url\(['"]?([^'")]+)""")


def _ingest_runs(settings: Settings) -> dict[str, str]:
    """Two 10-minute-DAG load chains (a day each), each ending in build_data_docs; the
    validation run ids with the Data Docs page the warehouse recorded for each."""
    run_ids: list[str] = []
    for n, day in enumerate(DAYS):
        land_day(settings, day, hours=6)
        load_run_id = f"dd-{n}"
        found = discover_new_files(settings)
        for feed in FEEDS:
            validated = validate_feed(settings, feed, found[feed], load_run_id)
            run_ids.append(validated["validation_run_id"])
            load_feed(settings, validated)
        assert build_data_docs(settings, Found(load_run_id=load_run_id, files={})) is not None
    with db.reader(settings) as con:
        recorded = dict(
            con.execute(
                "select validation_run_id, data_docs_url from dq.validation_runs"
                " where data_docs_url is not null"
            ).fetchall()
        )
    assert sorted(recorded) == sorted(run_ids)
    return recorded


def _raw_get(url: str, path: str, **headers: str) -> tuple[int, bytes]:
    """A request with the path sent byte for byte (httpx would remove dot segments)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in {"X-API-Key": API_KEY, **headers}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_data_docs_are_served_offline_and_list_every_run(
    settings: Settings, tmp_path: Path, chromium: Any
) -> None:
    pages = _ingest_runs(settings)
    site = site_dir(settings)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    (site / "leak.txt").symlink_to(secret)
    (site / "rootdir").symlink_to("/")

    with serving(settings, tmp_path) as server:
        # Every stored page has its URL, and the server has the page.
        urls = {vrid: result_url(path) for vrid, path in pages.items()}
        with server.client() as api:
            for url in urls.values():
                answer = api.get(url)
                assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
                csp = answer.headers["content-security-policy"]
                assert "script-src 'self' 'unsafe-inline'" in csp and "http" not in csp
            # What the browser gets has no URL of another host (SVG namespaces aside).
            served = [p for p in site.rglob("*") if p.suffix in (".html", ".css")]
            assert len(served) >= 2 + len(pages)
            linked: set[str] = set()
            for path in served:
                url = "/datadocs/" + path.relative_to(site).as_posix()
                text = api.get(url).text
                foreign = [u for u in re.findall(r"https?://\S+", text) if not NAMESPACES.match(u)]
                assert not foreign, f"{path.name}: {foreign[:3]}"
                for m in LINKS.finditer(text):
                    ref = m.group(1) or m.group(2)
                    if not ref.startswith(("#", "data:")):
                        linked.add(urljoin(url, ref).partition("#")[0])
            # Everything the pages name is here (the favicon of a result page too).
            missing = [u for u in sorted(linked) if api.get(u).status_code != 200]
            assert not missing and len(linked) > 20, missing
            assert api.get("/datadocs").headers["location"] == "/datadocs/index.html"
            assert api.get("/datadocs/static/images/logo-long.png").status_code == 200
        with server.client(key=None) as anon:
            assert anon.get("/datadocs/index.html").status_code == 401

        # Paths that try to leave the site: a 4xx, never the file, never a 500.
        for path in (
            "/datadocs/../great_expectations.yml",
            "/datadocs/%2e%2e/great_expectations.yml",
            "/datadocs/%2E%2E/%2E%2E/great_expectations.yml",
            "/datadocs/static/..%2f..%2f..%2fgreat_expectations.yml",
            "/datadocs/%252e%252e/great_expectations.yml",
            "/datadocs//etc/passwd",
            "/datadocs/%2fetc%2fpasswd",
            "/datadocs/..%5c..%5cgreat_expectations.yml",
            "/datadocs/index.html%00.png",
            "/datadocs/leak.txt",
            "/datadocs/rootdir/etc/passwd",
            "/datadocs/static",
            "/datadocs/" + "a/" * 600,
        ):
            status, body = _raw_get(server.url, path)
            assert 400 <= status < 500, (path, status)
            assert b"not for the browser" not in body and b"root:" not in body
            assert b"data_docs_sites" not in body

        context, page, watch = open_page(chromium, server.url)
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        try:
            sign_in(page, API_KEY, "/datadocs/index.html")
            assert urlsplit(page.url).path == "/datadocs/index.html"
            rows = page.locator(INDEX_ROWS)
            rows.first.wait_for()
            listed = {
                t.strip() for t in page.locator(f"{INDEX_ROWS} td:nth-child(3)").all_inner_texts()
            }
            assert listed == set(pages), f"index lists {listed}"
            _assert_styled(page)
            screenshot(page, "datadocs_index")

            # A click on a run opens its result page (bootstrap-table's row handler).
            newest = page.locator(INDEX_ROWS).first
            run_name = newest.locator("td:nth-child(3)").inner_text().strip()
            with page.expect_navigation():
                newest.click()
            page.wait_for_load_state("networkidle")
            assert urlsplit(page.url).path == urls[run_name]
            assert run_name in page.content()
            _assert_styled(page)
            logo = page.locator(".navbar-brand img")
            assert logo.get_attribute("src") == "/datadocs/static/images/logo-long.png"
            assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
            screenshot(page, "datadocs_result")
        finally:
            context.close()
        assert not failed, f"failed loads: {failed}"
        assert any("/static/vendor/vega@5.33.1/" in u for u in watch.requests)
        watch.assert_clean()


def _assert_styled(page: Any) -> None:
    """Bootstrap's CSS applies and Font Awesome's solid font loaded."""
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('.btn-secondary, .alert-secondary'))"
        ".backgroundColor"
    )
    assert colour in (BOOTSTRAP_SECONDARY, "rgb(226, 227, 229)"), colour  # .alert-secondary
    assert page.evaluate("getComputedStyle(document.querySelector('.navbar')).display") == "flex"
    loaded = page.evaluate(
        "document.fonts.ready.then(() =>"
        " [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded'))"
    )
    assert loaded, "Font Awesome's font did not load"


def test_no_data_docs_yet_is_a_404(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path) as server, server.client() as api:
        answer = api.get("/datadocs/index.html")
        assert answer.status_code == 404 and "not built yet" in answer.json()["error"]
