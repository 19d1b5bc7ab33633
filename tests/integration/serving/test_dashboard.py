"""The operations-centre dashboard (`/`, serving/routes_pages.py) in headless Chromium, on the
real `citypipe serve` over a warehouse built by the real load and KPI run
(support/dashboard_data.py), with alerts in the real alert store.

Checked: a browser without a session is sent to /login; after signing in through the form the
tiles show the API's values (read with httpx here and compared with the numbers in the DOM), the
charts carry the API's classes and HJ 633 colours, every figure says provisional or final,
Chinese by default and English after the switch (kept across a reload), no console error and
no request to any other host, and strings from the data (a site name, alert fields holding HTML
and script) are shown as text and never run."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.browser import open_page, screenshot, sign_in
from support.dashboard_data import EVENT_POINT, build_dashboard
from support.serving_helpers import API_KEY, serving

from alerts.rules import Alert, Change
from alerts.store import AlertStore, store_path
from common.settings import REPO_ROOT, Settings, get_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HTML = {"Accept": "text/html,application/xhtml+xml"}
# Strings that would run if the page ever put data into the DOM as HTML.
HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\">积水点"
HOSTILE_SITE = "<script>document.title='pwned'</script>"
HOSTILE_LEVEL = "<b onmouseover=alert(1)>x</b>"
AQI_HEX = {  # HJ 633 category colours as the API gives them (colour_rgb) -> the page's hex
    "0,228,0": "#00e400",
    "255,255,0": "#ffff00",
    "255,126,0": "#ff7e00",
    "255,0,0": "#ff0000",
    "153,0,76": "#99004c",
    "126,0,35": "#7e0023",
}


@pytest.fixture
def hostile_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings with a reference copy whose waterlogging point EVENT_POINT has an HTML name."""
    reference = tmp_path / "reference"
    shutil.copytree(REPO_ROOT / "reference", reference)
    path = reference / "sites" / settings.city / "waterlogging_points.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["site_id"] == EVENT_POINT:
            row["name_zh"] = HOSTILE_NAME
            row["name_en"] = HOSTILE_NAME
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setenv("CITYPIPE_REFERENCE_DIR", str(reference))
    return get_settings()


def write_alerts(settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    alerts = [
        Alert(
            id="a-wlg",
            kind="waterlogging",
            site_id=EVENT_POINT,
            level="closure",
            level_no=2,
            value=27.5,
            unit="cm",
            threshold=25.0,
            started_at=now - timedelta(minutes=20),
            updated_at=now,
        ),
        Alert(
            id="a-bad",
            kind="aqi",
            site_id=HOSTILE_SITE,
            level=HOSTILE_LEVEL,
            level_no=1,
            value=231.0,
            unit="AQI",
            threshold=200.0,
            started_at=now - timedelta(minutes=5),
            updated_at=now,
        ),
    ]
    store = AlertStore(store_path(settings.home))
    try:
        store.write([Change("raise", a) for a in alerts])
    finally:
        store.close()


def county(pack: dict[str, Any], kpi_id: str, dimension: str = "county") -> dict[str, Any]:
    return next(k for k in pack["kpis"] if k["kpi_id"] == kpi_id and k["dimension"] == dimension)


def shown(page: Any, kpi: str, field: str) -> str:
    return str(page.locator(f'.tile[data-kpi="{kpi}"] [data-field="{field}"]').text_content())


def number(page: Any, kpi: str, field: str = "value") -> float:
    return float(shown(page, kpi, field))


def status(page: Any, selector: str) -> str | None:
    return page.locator(f'{selector} [data-field="status"]').first.get_attribute("data-status")


def chart_series(page: Any, chart_id: str) -> list[dict[str, Any]]:
    series: list[dict[str, Any]] = page.evaluate(
        "id => echarts.getInstanceByDom(document.getElementById(id)).getOption().series", chart_id
    )
    return series


def test_the_dashboard_shows_the_api_values_in_chromium(
    hostile_settings: Settings, tmp_path: Path, chromium: Any
) -> None:
    settings = hostile_settings
    # The pack's day, then an open day whose first 12 hours only the intra-day run has seen.
    day = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=2)
    open_day = day + timedelta(days=1)
    build_dashboard(settings, day, open_hours=12)
    write_alerts(settings)

    with serving(settings, tmp_path) as server, server.client() as api:
        good = api.get("/api/v1/air/good-days").json()["good_days"]
        pack = api.get("/api/v1/pack/latest").json()
        live = api.get("/api/v1/live/air/hourly", params={"site_id": "county"}).json()
        assert live["day"] == open_day.isoformat() and live["status"] == "provisional"
        hourly = live["rows"]
        assert len(hourly) == 12
        assert pack["date"] == day.isoformat()
        # The data is rich enough that no comparison below is "— equals —".
        assert good["ytd_valid_days"] == 2 and good["ytd_ratio_pct"] is not None

        # A browser without a session is sent to sign in, and comes back to the dashboard.
        with server.client(key=None) as anon:
            moved = anon.get("/", headers=HTML)
            assert moved.status_code == 303 and moved.headers["location"] == "/login?next=/"

        context, page, watch = open_page(
            chromium, server.url, viewport={"width": 1920, "height": 1080}
        )
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            page.goto("/")
            assert page.url == server.url + "/login?next=/"
            sign_in(page, API_KEY, "/")
            assert page.url == server.url + "/"
            page.wait_for_selector('#load-state[data-state="ok"]', timeout=30_000)
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            assert page.locator(".tile[data-state=ready]").count() == 6
            assert page.locator("#data-day").text_content() == day.isoformat()
            assert page.locator("#updated-at").text_content() != "—"

            # -- tiles against the API
            kpi = "air.good_days_ratio"
            assert number(page, kpi) == pytest.approx(good["ytd_ratio_pct"], abs=0.051)
            assert number(page, kpi, "target") == pytest.approx(good["target_pct"])
            assert shown(page, kpi, "days") == f"{good['ytd_good_days']}/{good['ytd_valid_days']}"
            assert int(shown(page, kpi, "budget")) == good["remaining_nongood_budget_days"]
            assert status(page, f'.tile[data-kpi="{kpi}"]') == good["status"]
            for kpi in ("water.class_ii_share", "water.drinking_source_compliance"):
                row = county(pack, kpi)
                assert row["value"] is not None
                assert number(page, kpi) == pytest.approx(row["value"], abs=0.051)
                assert number(page, kpi, "target") == pytest.approx(row["target"])
                assert shown(page, kpi, "counts") == row["value_text"]
                assert number(page, kpi, "year") == pytest.approx(
                    row["details"]["year_pct"], abs=0.051
                )
                assert status(page, f'.tile[data-kpi="{kpi}"]') == row["status"]
            aqi = county(pack, "air.aqi")
            assert number(page, "air.aqi") == aqi["value"]
            assert shown(page, "air.aqi", "category") == aqi["details"]["category_zh"]
            events = county(pack, "waterlogging.events")
            assert events["value"] >= 1
            assert number(page, "waterlogging.events") == events["value"]
            depth = county(pack, "waterlogging.max_depth")
            assert number(page, "waterlogging.events", "max_depth") == pytest.approx(
                depth["value"], abs=0.051
            )
            wet = api.get("/api/v1/live/waterlogging/current").json()
            assert wet["last_run"]["open_day"] == open_day.isoformat() and wet["events"]
            assert page.locator('[data-field="today-line"]').is_visible()
            assert int(shown(page, "waterlogging.events", "today")) == len(wet["events"])
            assert int(shown(page, "waterlogging.events", "today_ongoing")) == wet["open_events"]
            tpi = county(pack, "traffic.tpi", "old_town")
            assert number(page, "traffic.tpi") == pytest.approx(tpi["value"], abs=0.0051)
            assert shown(page, "traffic.tpi", "level") == tpi["details"]["level_zh"]

            # -- charts: classes and colours from the API; every panel says its status
            water = next(s for s in chart_series(page, "chart-water") if s["type"] == "bar")
            names = page.evaluate(
                "() => echarts.getInstanceByDom(document.getElementById('chart-water'))"
                ".getOption().yAxis[0].data"
            )
            by_name = dict(zip(names, water["data"], strict=True))
            for row in pack["kpis"]:
                if row["kpi_id"] == "water.section_class" and row["value"] is not None:
                    site = api.get("/api/v1/sites", params={"feed": "water"}).json()
                    name = next(
                        s["name_zh"] for s in site["sites"] if s["site_id"] == row["dimension"]
                    )
                    assert by_name[name]["value"] == row["value"], name
            # the open day's provisional hours, hatched, not the pack day's
            bars = chart_series(page, "chart-aqi-hourly")[0]["data"]
            in_order = sorted(hourly, key=lambda r: r["hour_end"])
            assert [b["value"] for b in bars] == [r["aqi"] for r in in_order]
            for bar, row in zip(bars, in_order, strict=True):
                assert bar["status"] == "provisional" and bar["itemStyle"]["decal"] != "none"
                if row["colour_rgb"]:
                    assert bar["itemStyle"]["color"] == AQI_HEX[row["colour_rgb"]]
            hourly_title = page.evaluate(
                "() => echarts.getInstanceByDom(document.getElementById('chart-aqi-hourly'))"
                ".getOption().title[0].text"
            )
            assert open_day.isoformat() in hourly_title and "暂定" in hourly_title
            events_api = api.get(
                "/api/v1/waterlogging/events",
                params={"start": day.isoformat(), "end": (day + timedelta(days=2)).isoformat()},
            ).json()["rows"]
            events_api = list(
                {(e["site_id"], e["event_start"]): e for e in events_api + wet["events"]}.values()
            )
            rings = chart_series(page, "chart-waterlogging")[1]["data"]
            assert sorted(r["value"][2] for r in rings) == sorted(
                [
                    sum(e["site_id"] == s for e in events_api)
                    for s in {e["site_id"] for e in events_api}
                ]
            )
            assert len(rings) >= 1
            for panel in ("aqi", "water", "waterlogging", "traffic"):
                assert status(page, f"#panel-{panel}") in ("provisional", "final", "mixed")
            for chart in ("aqi-daily", "aqi-hourly", "water", "waterlogging", "traffic"):
                assert page.locator(f"#chart-{chart} canvas").count() >= 1

            # -- data shown as text, never run
            cells = page.locator("#alerts-body tr td").all_text_contents()
            assert HOSTILE_NAME in cells and HOSTILE_SITE in cells and HOSTILE_LEVEL in cells
            assert (
                page.locator("#alerts-table img, #alerts-table script, #alerts-table b").count()
                == 0
            )
            assert page.title() != "pwned"
            screenshot(page, "dashboard")

            # -- the language switch, kept across a reload
            page.click("#lang-toggle")
            assert page.locator("html").get_attribute("lang") == "en"
            title = page.locator('.tile[data-kpi="air.good_days_ratio"] h2')
            assert title.text_content() == "Good-days ratio (year to date)"
            assert shown(page, "air.aqi", "category") == aqi["details"]["category_en"]
            badge = page.locator('.tile[data-kpi="air.aqi"] [data-field="status"]')
            assert badge.text_content() == aqi["status"]
            page.reload()
            page.wait_for_selector('#load-state[data-state="ok"]', timeout=30_000)
            assert title.text_content() == "Good-days ratio (year to date)"
            assert page.locator("#lang-toggle").text_content() == "中文"
            screenshot(page, "dashboard-en")
            page.click("#lang-toggle")
            assert title.text_content() == "空气质量优良天数比率（年累计）"

            assert not dialogs
            assert page.title() != "pwned"
            watch.assert_clean()
        finally:
            context.close()
