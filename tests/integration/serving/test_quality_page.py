"""The data-quality report (/quality) in a real headless Chromium, on the real `citypipe serve`
over a warehouse built by the real load chain: it shows the counts the API gives, switches
language, shows stored markup as text, links the CSV exports and the Data Docs pages, and asks
nothing of any host but the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from support.browser import open_page, screenshot, sign_in
from support.quality_seed import DAY, GAP_SITE, XSS, SeqPlan, build_quality
from support.serving_helpers import API_KEY, serving

from common.settings import Settings

pytestmark = [pytest.mark.integration]

ONE_DAY = {"start": DAY.isoformat(), "end": DAY.isoformat()}
PAGE = f"/quality?start={DAY}&end={DAY}"


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").strip())


def tile(page: Any, name: str) -> float:
    return number(page.text_content(f"#sum-{name}") or "")


def test_the_report_shows_the_api_counts_in_both_languages(
    settings: Settings, tmp_path: Path, chromium: Any
) -> None:
    build_quality(settings)
    with serving(settings, tmp_path) as server, server.client() as api:
        days = api.get("/api/v1/quality/days", params={**ONE_DAY, "limit": 10000}).json()["rows"]
        seq = api.get("/api/v1/quality/seq-gaps", params={**ONE_DAY, "limit": 10000}).json()
        quarantined = api.get("/api/v1/quality/quarantined", params=ONE_DAY).json()["rows"]
        runs = api.get("/api/v1/quality/runs", params=ONE_DAY).json()["rows"]
        flagged_total = sum(f["readings"] for r in days for f in r["flagged"])
        assert flagged_total > 1 and len(quarantined) == 2 and len(runs) == 4

        context, page, watch = open_page(chromium, server.url)
        try:
            page.goto(PAGE)  # no session yet: to the sign-in form and back
            assert urlsplit(page.url).path == "/login"
            sign_in(page, API_KEY, quote(PAGE, safe="/"))
            page.wait_for_selector("body[data-state=ready]", timeout=30_000)
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            assert page.text_content("h1") == "数据质量报告"

            # The tiles are the API's counts.
            with_expected = [r for r in days if r["completeness_pct"] is not None]
            assert tile(page, "site-days") == len(with_expected)
            assert tile(page, "flagged") == flagged_total
            assert (
                tile(page, "quarantined")
                == sum(q["messages"] for r in days for q in r["quarantined"])
                == len(quarantined)
            )
            assert tile(page, "silent") == sum(r["is_silent"] for r in days) > 0
            assert tile(page, "flatlined") == sum(r["is_flatlined"] for r in days) >= 1
            mean = sum(r["completeness_pct"] for r in with_expected) / len(with_expected)
            assert abs(tile(page, "completeness") - mean) < 0.01
            plan = SeqPlan()
            assert tile(page, "missing") == sum(r["missing"] for r in seq["rows"]) == plan.missing
            assert tile(page, "resets") == sum(r["resets"] for r in seq["rows"]) == plan.resets

            # The tables: the day rows (paged by 25), the one device-day with anomalies, the
            # runs with their Data Docs links, the quarantined messages.
            assert page.locator("#t-days tbody tr").count() == min(25, len(days))
            # Only the site-days with a problem: the one complete day drops out if there is one.
            problems = [
                r
                for r in days
                if (r["completeness_pct"] is not None and r["completeness_pct"] < 100)
                or r["flagged"]
                or r["quarantined"]
                or r["is_silent"]
                or r["is_flatlined"]
            ]
            page.check("#days-problems")
            assert page.locator("#t-days tbody tr").count() == min(25, len(problems)) > 0
            page.uncheck("#days-problems")
            seq_rows = page.locator("#t-seq tbody tr")
            assert seq_rows.count() == 1 and GAP_SITE in (seq_rows.first.text_content() or "")
            assert "101–103" in (seq_rows.first.text_content() or "")
            links = page.locator("#t-runs a.docs")
            assert links.count() == len(runs)
            hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
            assert hrefs == {r["data_docs_url"] for r in runs}
            assert page.locator("#t-expectations tbody tr").count() == len(
                {f["expectation"] for r in days for f in r["flagged"]}
            )

            # Stored markup is text: no element made from it, nothing run, shown as written.
            q_table = page.locator("#t-quarantined")
            assert q_table.locator("tbody tr").count() == 2
            assert q_table.locator("img, script").count() == 0
            assert page.locator("img").count() == 0
            assert page.evaluate("window.__xss") is None
            cells = q_table.locator("tbody td").all_text_contents()
            assert cells.count(XSS) >= 2  # reason and detail, verbatim

            # The CSV exports carry the page's filters and answer CSV.
            for name, path in (
                ("flagged", "/api/v1/quality/flagged"),
                ("quarantined", "/api/v1/quality/quarantined"),
                ("seq", "/api/v1/quality/seq-gaps"),
            ):
                href = page.get_attribute(f"#csv-{name}", "href") or ""
                parts = urlsplit(href)
                assert parts.path == path and not parts.netloc
                query = parse_qs(parts.query)
                assert query["format"] == ["csv"] and query["start"] == [DAY.isoformat()]
                got = page.request.get(href)
                assert got.ok and got.headers["content-type"].startswith("text/csv")
            flagged_csv = page.request.get(page.get_attribute("#csv-flagged", "href") or "")
            assert len(flagged_csv.text().strip().splitlines()) == 1 + len(
                api.get("/api/v1/quality/flagged", params={**ONE_DAY, "limit": 10000}).json()[
                    "rows"
                ]
            )

            screenshot(page, "quality")

            # Filters: one site of one feed.
            page.select_option("#f-feed", "air")
            page.select_option("#f-site", GAP_SITE)
            page.click("#filters button[type=submit]")
            page.wait_for_selector("body[data-state=ready]")
            assert f"site_id={GAP_SITE}" in page.url
            assert page.locator("#t-days tbody tr").count() == 1
            assert tile(page, "missing") == plan.missing and tile(page, "flagged") == 0

            # English, and it stays English on the next visit.
            page.click("#lang")
            assert page.text_content("h1") == "Data-quality report"
            assert page.locator("html").get_attribute("lang") == "en"
            assert "Missing" in (page.text_content("#t-seq thead") or "")
            assert tile(page, "missing") == plan.missing
            page.reload()
            page.wait_for_selector("body[data-state=ready]")
            assert page.text_content("h1") == "Data-quality report"
            screenshot(page, "quality-en")
            page.click("#lang")
            assert page.text_content("h1") == "数据质量报告"
            assert "缺失" in (page.text_content("#t-seq thead") or "")

            # A run's Data Docs link opens its page on this server.
            first = page.locator("#t-runs a.docs").first
            run_id = page.locator("#t-runs tbody tr").first.locator("td").nth(2).text_content()
            first.click()
            page.wait_for_load_state("networkidle")
            assert urlsplit(page.url).path.startswith("/datadocs/validations/")
            assert run_id and run_id in page.content()

            watch.assert_clean()
        finally:
            context.close()
    assert "Traceback" not in server.log.read_text()
