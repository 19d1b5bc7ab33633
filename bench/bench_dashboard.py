"""Dashboard benchmark: time from navigation until the operations-centre dashboard (`/`) shows
its KPI tiles' values, in headless Chromium, over N page loads (median and p95).

    python -m bench.bench_dashboard [--loads 20] [--keep]

Data: a warehouse built as the dashboard's browser test builds it (tests/support/dashboard_data.py:
landing Parquet for two days and 12 hours of a third, the real load chain, KPI run and intra-day
run) in a temporary home, then
`citypipe serve` in a subprocess (tests/support/serving_helpers.py) and Debian's Chromium driven
by Playwright. Each load is timed two ways:

- in the page: the `citypipe:tiles` performance mark the dashboard sets when its tiles first
  hold values, measured from the navigation start (what a person waits for);
- from outside: `page.goto("/")` until every tile says `data-state=ready`, polled every
  animation frame (adds Playwright's round trips).

Cold = a new browser context for each load (empty cache, only the session cookie kept);
warm = reloads in one context (ECharts and the page assets revalidated from the cache). No target:
the figures go into docs/serving.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common.settings import REPO_ROOT, get_settings

CHROMIUM = os.environ.get("CITYPIPE_CHROMIUM", "/usr/bin/chromium")
READY = "() => document.querySelectorAll('.tile[data-state=ready]').length === 6"
MARK = "() => performance.getEntriesByName('citypipe:tiles')[0].startTime"


def summary(label: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{label:<44}{statistics.median(ordered):>10.0f}{p95:>10.0f}"
        f"{ordered[0]:>10.0f}{ordered[-1]:>10.0f}{len(ordered):>6}"
    )


def one_load(page: Any) -> tuple[float, float]:
    t0 = time.perf_counter()
    page.goto("/", wait_until="commit")  # not the load event: the tiles may come before it
    page.wait_for_function(READY, polling="raf", timeout=60_000)
    outside_ms = (time.perf_counter() - t0) * 1000
    return float(page.evaluate(MARK)), outside_ms


def measure(base_url: str, key: str, loads: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {
        k: [] for k in ("cold_mark", "cold_out", "warm_mark", "warm_out")
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            viewport: Any = {"width": 1920, "height": 1080}
            # Sign in once through the form; every cold context starts with that cookie only.
            first = browser.new_context(base_url=base_url, viewport=viewport)
            page = first.new_page()
            page.goto("/login?next=/")
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.wait_for_function(READY, timeout=60_000)
            cookies: Any = first.cookies()
            first.close()
            for _ in range(loads):
                ctx = browser.new_context(base_url=base_url, viewport=viewport)
                ctx.add_cookies(cookies)
                mark, outside = one_load(ctx.new_page())
                out["cold_mark"].append(mark)
                out["cold_out"].append(outside)
                ctx.close()
            ctx = browser.new_context(base_url=base_url, viewport=viewport)
            ctx.add_cookies(cookies)
            page = ctx.new_page()
            one_load(page)  # fills the cache
            for _ in range(loads):
                mark, outside = one_load(page)
                out["warm_mark"].append(mark)
                out["warm_out"].append(outside)
            ctx.close()
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=20, help="page loads per mode (default 20)")
    p.add_argument("--keep", action="store_true", help="keep the data folder (and serve.log)")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        return 2
    # The test helpers build the warehouse and run the server exactly as the browser test does.
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    # tests/ is not a package mypy sees from here
    from support.dashboard_data import build_dashboard  # type: ignore[import-not-found]
    from support.serving_helpers import API_KEY, serving  # type: ignore[import-not-found]

    home = Path(tempfile.mkdtemp(prefix="citypipe-bench-dashboard-"))
    os.environ["CITYPIPE_HOME"] = str(home)
    try:
        settings = get_settings()
        day = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=2)
        t0 = time.perf_counter()
        build_dashboard(settings, day, open_hours=12)
        print(
            f"  warehouse of {day - timedelta(days=1)} and {day}, 12 h of {day + timedelta(days=1)}"
            f" (intra-day): {time.perf_counter() - t0:.1f} s"
        )
        with serving(settings, home) as server:
            figures = measure(server.url, API_KEY, args.loads)
    finally:
        if args.keep:
            print(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"time until the tiles show their values, {args.loads} loads each, 1920x1080")
    print(f"{'':<44}{'p50 ms':>10}{'p95 ms':>10}{'min ms':>10}{'max ms':>10}{'n':>6}")
    print(summary("cold (new context), in page", figures["cold_mark"]))
    print(summary("cold (new context), goto..tiles", figures["cold_out"]))
    print(summary("warm (reload), in page", figures["warm_mark"]))
    print(summary("warm (reload), goto..tiles", figures["warm_out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
