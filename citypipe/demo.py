"""`citypipe demo`: the whole chain on the embedded defaults.

Three simulated local days that cross midnight, with faults and a gateway outage whose backlog
arrives a day late:

1. days 1-2 are published (one air station's evening of day 2 is held back) → ingest →
   ``citypipe_ingest`` (validate + load) → ``citypipe_daily_kpis`` for days 1 and 2;
2. day 3 and the held-back backlog are published → ingest → ``citypipe_ingest`` →
   ``citypipe_daily_kpis`` for day 3, which also recomputes day 2 (late data) and records the
   restatement;
3. the per-feed ingest table, the validation summary, validity per value column (received,
   valid, invalidated by a value check or with the whole reading), the KPI pack and
   restatements are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common.settings import Settings

# Flood season (waterlogging events) on weekdays with rush hours; fixed so the demo is repeatable.
DEFAULT_START = date(2026, 7, 14)
# The air station whose gateway "fails" on the evening of day 2 and sends its backlog a day late.
OUTAGE_SITE = "WS-AIR-02"
OUTAGE_FROM_HOUR = 18


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded defaults",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    p.add_argument("--days", type=int, default=3, help="local days to simulate (default 3)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--faults", default="default", choices=("none", "default", "heavy"))
    p.add_argument(
        "--skip-airflow", action="store_true", help="stop after ingestion (no validation or KPIs)"
    )
    p.set_defaults(func=run)


@dataclass
class Phase:
    label: str
    messages: list[Any]
    kpi_days: list[date]


def _split_phases(messages: Iterable[Any], start: date, days: int, tz: ZoneInfo) -> list[Phase]:
    """Phase 1: all but the last day, minus the outage; phase 2: the last day plus the backlog."""
    last = start + timedelta(days=days - 1)
    outage_day = last - timedelta(days=1)
    on_time: list[Any] = []
    late: list[Any] = []
    for m in messages:
        sent_local = m.sent_at.astimezone(tz)
        if sent_local.date() >= last or (
            sent_local.date() == outage_day
            and sent_local.hour >= OUTAGE_FROM_HOUR
            and m.topic.endswith("/" + OUTAGE_SITE)
        ):
            late.append(m)
        else:
            on_time.append(m)
    # The backlog of the outage goes out with the last day's traffic, in send order.
    late.sort(key=lambda m: m.sent_at)
    days_before = [start + timedelta(days=i) for i in range(days - 1)]
    return [
        Phase(f"days {start} .. {outage_day} (outage at {OUTAGE_SITE})", on_time, days_before),
        Phase(f"day {last} + late backlog of {outage_day}", late, [last]),
    ]


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[Settings]:
    if settings.mqtt_url:
        print(f"broker: {settings.mqtt_url} (CITYPIPE_MQTT_URL)")
        yield settings
        return
    from simulator.broker import start_broker

    with start_broker(settings.home / "broker") as handle:
        print(f"broker: embedded {handle.kind} at {handle.url}")
        yield settings.model_copy(update={"mqtt_url": handle.url})


def _ingest_while_publishing(settings: Settings, messages: list[Any]) -> dict[str, Any]:
    """Run the ingest service in-process while the simulator publishes; drain until idle."""
    from ingestion.service import IngestService
    from simulator.simulate import publish

    service = IngestService(settings, until_idle_s=3.0)
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", service.run()), daemon=True)
    thread.start()
    # Let the service subscribe first: its persistent session then queues everything we send.
    deadline = time.monotonic() + 30
    while not service.metrics.snapshot()["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = publish(
        messages,
        settings.mqtt_url or "",
        client_id="",
        total=len(messages),
        progress=sys.stderr.isatty(),
    )
    print(f"  published: {stats.line()}")
    thread.join()
    if result.get("rc", 1) != 0:
        raise RuntimeError("ingest service failed; see the log above")
    return service.metrics.snapshot()


def _add(total: dict[str, dict[str, int]], snap: dict[str, Any]) -> None:
    for feed, c in snap["feeds"].items():
        t = total.setdefault(
            feed, {"received": 0, "accepted": 0, "quarantined": 0, "duplicates": 0}
        )
        for k in t:
            t[k] += int(c[k])


def _ingest_table(total: dict[str, dict[str, int]], landing: Path) -> str:
    head = (
        f"  {'feed':<13}{'received':>10}{'accepted':>10}{'quarantined':>13}{'duplicates':>12}  ok"
    )
    lines = [head]
    for feed, c in sorted(total.items()):
        ok = c["received"] == c["accepted"] + c["quarantined"] + c["duplicates"]
        lines.append(
            f"  {feed:<13}{c['received']:>10}{c['accepted']:>10}{c['quarantined']:>13}"
            f"{c['duplicates']:>12}  {'yes' if ok else 'NO'}"
        )
    lines.append(f"  landing files: {landing}")
    return "\n".join(lines)


def _run_dag(settings: Settings, dag_id: str, day: date) -> None:
    from citypipe.rundag import run_dag

    t0 = time.perf_counter()
    rc = run_dag(settings, dag_id, day, {"date": day.isoformat()})
    if rc != 0:
        raise RuntimeError(f"DAG {dag_id} for {day} failed (exit {rc})")
    print(f"  {dag_id} --date {day}: ok ({time.perf_counter() - t0:.0f} s)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from common.catalogue import load_catalogue
    from simulator.simulate import generate

    tz = ZoneInfo(settings.timezone)
    settings.home.mkdir(parents=True, exist_ok=True)
    print(f"citypipe demo: city {settings.city}, data directory {settings.home}")
    if args.days < 2:
        print("citypipe demo: --days must be at least 2 (late data needs a later day)")
        return 2
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    t0 = time.perf_counter()
    messages = generate(catalogue, args.start, args.days, seed=args.seed, faults=args.faults)
    phases = _split_phases(messages, args.start, args.days, tz)
    print(
        f"simulated {sum(len(p.messages) for p in phases)} messages for {args.days} days from "
        f"{args.start} in {time.perf_counter() - t0:.1f} s"
    )
    total: dict[str, dict[str, int]] = {}
    last_day = args.start + timedelta(days=args.days - 1)
    with _broker(settings) as live:
        for phase in phases:
            print(f"\n== {phase.label}: {len(phase.messages)} messages")
            _add(total, _ingest_while_publishing(live, phase.messages))
            if args.skip_airflow:
                continue
            _run_dag(live, "citypipe_ingest", datetime.now(tz).date())
            for day in phase.kpi_days:
                _run_dag(live, "citypipe_daily_kpis", day)

    print("\n== ingestion (records; received = accepted + quarantined + duplicates)")
    print(_ingest_table(total, settings.landing_dir))
    if args.skip_airflow:
        return 0
    from warehouse.report import ingest_summary, value_validity

    print("\n== validation and load (latest citypipe_ingest run)")
    print(ingest_summary(settings))
    print(f"\n== validity per value, {args.start} .. {last_day} (values a check invalidated are NA")
    print("   for their own averages only; a device fault flag invalidates the whole reading)")
    print(value_validity(settings, args.start, last_day))
    print(f"\n== KPIs for {last_day}")
    from citypipe.cli import main as cli_main

    rc = cli_main(["kpis", "--date", last_day.isoformat(), "--format", "table"])
    _print_restatements(settings)
    return rc


def _print_restatements(settings: Settings) -> None:
    from warehouse import db

    sql = (Path(__file__).parent / "sql" / "recent_restatements.sql").read_text(encoding="utf-8")
    with db.reader(settings) as con:
        rows = con.execute(sql, {"max_rows": 20}).fetchall()
    print(f"\n== restatements ({len(rows)} shown; late data changed published values)")
    for kpi_id, day, dim, old, new, reason in rows:
        print(f"  {day} {kpi_id} [{dim}]: {old} -> {new} ({reason})")
