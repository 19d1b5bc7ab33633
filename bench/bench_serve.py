"""API benchmark: p50 / p99 latency and requests per second of the KPI and station endpoints of
`citypipe serve` with 50 concurrent clients, next to the same query run directly on DuckDB
(50 threads, one cursor each), on the single file (served from a snapshot) and on DuckLake
with a SQLite catalog.

    python -m bench.bench_serve [--scale 0.1] [--clients 50] [--seconds 10] [--backends file,sqlite]
                                [--alert-cycles 50]

Also the alert latency of issue 11's benchmark list, from a sensor's publish to the alert's
publish through a real Mosquitto (``bench.bench_alerts.run``: ``--alert-cycles`` raise and clear
cycles, two samples each; 0 skips it; ``make bench-alerts`` is the full run with the backlog).
The dashboard's time to tiles and the provisional values' freshness are measured elsewhere.

Data: ``--scale`` of a year of every catalogue site generated into the core tables (as
bench_kpi does), then one KPI range pass. Client and server share the machine's cores, so the
API figures include the client's own cost. No target: the figures go into docs/serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.bench_kpi import YEAR_START, generate
from common.settings import REPO_ROOT, Settings, get_settings
from serving import SQL
from serving.source import Source
from transforms.daily import compute_range
from warehouse import db
from warehouse.dims import load_dim_site

API_KEY = "bench-key-" + "0123456789abcdef"
STATION = "WS-AIR-01"


@dataclass
class Figures:
    label: str
    latencies_s: list[float]
    seconds: float
    errors: int

    def row(self) -> str:
        lat = sorted(self.latencies_s)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rps = len(lat) / self.seconds
        return f"{self.label:<60}{p50:>9.1f}{p99:>9.1f}{rps:>10.0f}{self.errors:>8}"


def build(settings: Settings, days: int) -> None:
    with db.writer(settings) as con:
        load_dim_site(con, settings)
        counts = generate(con, days, settings.timezone)
        print(f"  generated {sum(counts.values()):,} rows over {days} days")
        t0 = time.perf_counter()
        compute_range(con, YEAR_START, YEAR_START + timedelta(days=days - 1), "bench")
        print(f"  KPI range pass: {time.perf_counter() - t0:.1f} s")


def queries(last: date) -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """name -> (API path, SQL file, query string, SQL parameters): the same rows both ways."""
    first = last - timedelta(days=29)
    kpi = {"start_date": first, "end_date": last, "kpi_id": "air.aqi", "dimensions": ["county"]}
    station = {"start_date": first, "end_date": last, "site_id": STATION}
    page = {"limit": 1000, "offset": 0}
    return {
        "KPI air.aqi, county, 30 days": (
            "/api/v1/kpis/air.aqi",
            "select_kpi_values.sql",
            {"start": first.isoformat(), "end": last.isoformat(), "level": "county"},
            {**kpi, **page},
        ),
        f"station daily {STATION}, 30 days": (
            "/api/v1/air/stations/daily",
            "select_air_daily_station.sql",
            {"start": first.isoformat(), "end": last.isoformat(), "site_id": STATION},
            {**station, **page},
        ),
    }


async def _api_load(url: str, params: dict[str, Any], clients: int, seconds: float) -> Figures:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, limits=limits, timeout=60) as c:
        stop = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await c.get(url, params=params)
                except httpx.HTTPError as exc:
                    errors += 1
                    print(f"  request failed: {exc!r}")
                    continue
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        took = time.perf_counter() - t0
    return Figures("", latencies, took, errors)


def _direct_load(run: Callable[[], None], clients: int, seconds: float) -> Figures:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            run()
            latencies[i].append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Figures("", [x for lat in latencies for x in lat], time.perf_counter() - t0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_backend(kind: str, home: Path, args: argparse.Namespace) -> list[Figures]:
    url = (
        f"duckdb://{home}/warehouse/citypipe.duckdb"
        if kind == "file"
        else f"ducklake:sqlite://{home}/warehouse/catalog.sqlite"
    )
    env = {**os.environ, "CITYPIPE_HOME": str(home), "CITYPIPE_WAREHOUSE": url}
    env["CITYPIPE_API_KEYS"] = API_KEY
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    settings = get_settings(home=home, warehouse=url)
    days = max(2, round(365 * args.scale))
    print(f"{kind}: {settings.warehouse_target.describe()}")
    build(settings, days)
    last = YEAR_START + timedelta(days=days - 1)
    out: list[Figures] = []

    # Directly on DuckDB: the API's own source (snapshot or lake), a cursor per query.
    source = Source(settings)
    source.start()
    try:
        for name, (_, sql, _, params) in queries(last).items():

            def run(sql: str = sql, params: dict[str, Any] = params) -> None:
                with source.cursor() as cur:
                    SQL.run(cur, sql, params).fetchall()

            f = _direct_load(run, args.clients, args.seconds)
            f.label = f"{kind} DuckDB ({args.clients} thr.): {name}"
            out.append(f)
    finally:
        source.close()

    port = _free_port()
    log = home / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "citypipe.cli", "serve"),
                *("--port", str(port), "--threads", str(args.threads)),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/ready", headers={"X-API-Key": API_KEY}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        for name, (path, _, query, _) in queries(last).items():
            # 50 clients, then one: the service time of a request without queueing.
            for clients in dict.fromkeys((args.clients, 1)):
                f = asyncio.run(_api_load(base + path, query, clients, args.seconds))
                f.label = f"{kind} API ({clients} cl.): {name}"
                out.append(f)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.returncode not in (0, -15):
            print(f"  serve exited {proc.returncode}: {log.read_text()[-3000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.1, help="fraction of a year (default 0.1)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement (default 10)")
    p.add_argument("--backends", default="file,sqlite", help="file,sqlite (default both)")
    p.add_argument("--threads", type=int, default=8, help="serve --threads (default 8)")
    p.add_argument("--keep", action="store_true", help="keep the data folders (and serve.log)")
    p.add_argument(
        "--alert-cycles", type=int, default=50, help="alert latency cycles (default 50, 0: skip)"
    )
    args = p.parse_args(argv)
    figures: list[Figures] = []
    for kind in args.backends.split(","):
        home = Path(tempfile.mkdtemp(prefix=f"citypipe-bench-serve-{kind}-"))
        try:
            figures += bench_backend(kind, home, args)
        finally:
            if args.keep:
                print(f"  kept {home}")
            else:
                shutil.rmtree(home, ignore_errors=True)
    print()
    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s each, scale {args.scale:g},"
        f" serve --threads {args.threads}"
    )
    print(f"{'':<60}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>10}{'errors':>8}")
    for f in figures:
        print(f.row())
    alerts_ok = True
    if args.alert_cycles:
        alerts_ok = alert_latency(args.alert_cycles)
    return 0 if alerts_ok and all(f.errors == 0 for f in figures) else 1


def alert_latency(cycles: int) -> bool:
    """The alert service's latency (bench_alerts), one line; False when the target is missed."""
    from bench.bench_alerts import run as run_alerts
    from simulator.broker import BrokerUnavailable

    try:
        r = run_alerts(cycles, 50.0)
    except BrokerUnavailable as exc:
        print(f"alert latency: skipped, no Mosquitto ({exc})")
        return True
    print(
        f"alert latency, sensor publish -> alert publish ({r['samples']} samples, raise and"
        f" clear, 50 air msg/s meanwhile): p50 {r['all_p50_ms']:.1f} ms, p99"
        f" {r['all_p99_ms']:.1f} ms, max {r['all_max_ms']:.1f} ms"
        f" (target p99 <= {r['target_p99_ms']:.0f} ms: {'met' if r['met'] else 'MISSED'})"
    )
    return bool(r["met"])


if __name__ == "__main__":
    sys.exit(main())
