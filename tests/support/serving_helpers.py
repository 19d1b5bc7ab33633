"""A real warehouse built by the real load and KPI run, and `citypipe serve` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from common.settings import REPO_ROOT, Settings
from steps.ingest import load_feed, validate_feed
from support.wh_factory import series, write_landing
from transforms.daily import compute_day
from warehouse.followups import mark_dirty_days, record_dq
from warehouse.ledger import discover_new_files
from warehouse.quarantine import load_quarantine

API_KEY = "test-key-" + "0123456789abcdef"
FEEDS = ("air", "water", "waterlogging", "traffic")


def day_start(day: date) -> datetime:
    """00:00 China Standard Time of ``day``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8)


def land_day(settings: Settings, day: date, *, hours: int = 24) -> None:
    """Landing files of one local day for one site per feed (air with one bad value)."""
    start = day_start(day)
    rows = {
        "air": series("air", start, hours * 60),
        "water": series("water", start, max(1, hours // 4)),
        "waterlogging": series("waterlogging", start, hours * 60, depth_cm=3.0),
        "traffic": series("traffic", start, hours * 12),
    }
    rows["air"][3]["pm25_ugm3"] = -1.0
    for feed in FEEDS:
        write_landing(settings.home, feed, rows[feed])


def load(settings: Settings, run_id: str) -> None:
    """The ingest DAG's load chain (validate, load, quarantine, dq, dirty days)."""
    found = discover_new_files(settings)
    for feed in FEEDS:
        load_feed(settings, validate_feed(settings, feed, found[feed], run_id))
    load_quarantine(settings, found["quarantine"], run_id)
    record_dq(settings)
    mark_dirty_days(settings)


def build(settings: Settings, day: date) -> None:
    land_day(settings, day)
    load(settings, "serve-seed")
    compute_day(settings, day)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def client(self, key: str | None = API_KEY, **kw: object) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def serve_env(keys: str | None = API_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPIPE_API_KEYS")}
    if keys is not None:
        env["CITYPIPE_API_KEYS"] = keys
    # Tests here flood one key or one address on purpose (32 readers, schemathesis): no rate
    # limit unless a test sets one (tests/reliability/test_rel_api.py tests the limit itself).
    env.setdefault("CITYPIPE_SERVE_RATE_LIMIT_PER_MIN", "0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


@contextmanager
def serving(settings: Settings, tmp: Path) -> Iterator[Server]:
    """`citypipe serve` on a free port (environment: the test's settings), until the block ends."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "serve", "--port", str(port)],
            env=serve_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
