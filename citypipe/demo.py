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
   restatements are printed;
4. then it serves the result (``citypipe serve`` in this process: the dashboard, the
   data-quality report, the API) and prints their URLs and where the API key is, until Ctrl-C
   (exit 0). ``--no-serve`` exits after step 3; ``--serve-only`` serves an earlier run's data
   folder without running the demo again.

The API key: ``CITYPIPE_API_KEYS``/``CITYPIPE_API_KEYS_FILE`` when set, else a random key the
demo writes once to ``{home}/demo/api_keys`` (mode 0600, the ``CITYPIPE_API_KEYS_FILE``
format). Only the file's path is printed, never the key.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
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
# Where the demo serves by default (as `citypipe serve`); a busy port falls back to a free one.
DEFAULT_PORT = 8080


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
    p.add_argument(
        "--no-serve", action="store_true", help="exit after the report instead of serving it"
    )
    p.add_argument(
        "--serve-only",
        action="store_true",
        help="serve the data folder of an earlier demo run, without running the demo again",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to serve on (default {DEFAULT_PORT}; 0: a free port)",
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


@contextlib.contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    """``name`` set in this process's environment for the block (then as it was)."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _run_dag(settings: Settings, dag_id: str, day: date) -> None:
    # The DAG runs in a subprocess that reads its settings from the environment: it gets the
    # demo's broker, so the KPI run publishes its pack there too (docs/serving.md, MQTT topics).
    from citypipe.rundag import run_dag

    t0 = time.perf_counter()
    with _environ("CITYPIPE_MQTT_URL", settings.mqtt_url):
        rc = run_dag(settings, dag_id, day, {"date": day.isoformat()})
    if rc != 0:
        raise RuntimeError(f"DAG {dag_id} for {day} failed (exit {rc})")
    print(f"  {dag_id} --date {day}: ok ({time.perf_counter() - t0:.0f} s)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.serve_only:
        from warehouse import db

        if not db.exists(settings):
            print(f"citypipe demo: no warehouse under {settings.home}: run the demo first")
            return 1
        return serve(settings, args.host, args.port)
    rc = run_demo(args, settings)
    if rc != 0 or args.no_serve or args.skip_airflow:
        return rc
    return serve(settings, args.host, args.port)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
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


def demo_key_path(settings: Settings) -> Path:
    return settings.home / "demo" / "api_keys"


def _api_keys(settings: Settings) -> tuple[Settings, str]:
    """The settings to serve with, and where their API key is (said, never shown)."""
    from pydantic import SecretStr

    from serving.keys import MIN_KEY_CHARS, parse_keys

    if settings.api_keys is not None:
        if settings.api_keys_file is not None:
            return settings, f"{settings.api_keys_file} (CITYPIPE_API_KEYS_FILE)"
        return settings, "CITYPIPE_API_KEYS (your environment)"
    path = demo_key_path(settings)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not any(len(k) >= MIN_KEY_CHARS for k in parse_keys(text)):
        import secrets

        text = (
            "# citypipe demo API key (CITYPIPE_API_KEYS_FILE format): send it as the X-API-Key"
            f" header\n{secrets.token_urlsafe(24)}\n"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    os.chmod(path, 0o600)  # also when an earlier run left it (the key is a secret)
    served = settings.model_copy(update={"api_keys": SecretStr(text), "api_keys_file": path})
    return served, str(path)


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound now so the URLs printed are the port really served."""
    try:
        return socket.create_server((host, port))
    except OSError as exc:
        if port == 0:
            raise
        print(f"citypipe demo: port {port} is not available ({exc.strerror}); using a free one")
        return socket.create_server((host, 0))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve the demo's warehouse (``citypipe serve``'s app) until Ctrl-C or SIGTERM: exit 0."""
    import uvicorn

    from serving.app import create_app
    from serving.cli import uvicorn_options

    served, key_where = _api_keys(settings)
    app = create_app(served)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base = f"http://[{shown}]:{bound}" if ":" in shown else f"http://{shown}:{bound}"
    print("\n== serving (Ctrl-C stops)")
    print(f"  dashboard:     {base}/")
    print(f"  data quality:  {base}/quality")
    print(f"  API docs:      {base}/docs  (spec {base}/openapi.json, endpoints under /api/v1)")
    print(f"  API key:       in {key_where}; sign in with it (programs: X-API-Key header)")
    sys.stdout.flush()
    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again: as a
    # KeyboardInterrupt for both, so that either ends here with exit 0.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        config = uvicorn.Config(app, log_level="warning", **uvicorn_options(settings))
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print("citypipe demo: stopped serving")
    return 0
