"""Helpers of the ingest fault cases (tests/reliability/test_rel_ingest_faults.py).

- ``Publisher``: paced QoS 1 publishing in a thread that rides out broker restarts (paho keeps
  what the broker has not acknowledged and sends it again after reconnecting).
- ``read_only``: the landing zone made unwritable for real, even for root.
- ``warehouse_check``: the real ingest load chain into a DuckDB warehouse, then every expected
  reading looked up by its natural key.
- ``reconcile``: the status files' counters of several runs, checked and summed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from simulator.broker import BrokerHandle
from support.ingest_fixtures import VALUE_COLUMN
from support.ingest_process import Ingest
from support.payloads import Plan
from support.serving_helpers import load
from warehouse import db


class Publisher:
    """Publish ``messages`` at QoS 1, ``rate_per_s`` messages a second, in a background thread.

    Reconnects by itself (paho's loop) when the broker goes away; messages the broker had not
    acknowledged are sent again with DUP set, those published while disconnected wait in paho's
    queue. ``join`` waits until the broker acknowledged every message.
    """

    CHUNK = 100

    def __init__(
        self,
        broker: BrokerHandle,
        messages: list[tuple[str, bytes]],
        rate_per_s: float,
        client_id: str = "rel-pub",
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages = messages
        self.rate_per_s = rate_per_s
        self.sent = 0  # handed to paho
        self.acked = 0  # PUBACK received
        self.connects = 0
        self._cond = threading.Condition()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)  # unbounded: nothing published is dropped
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.connect_async(broker.host, broker.port)
        client.loop_start()
        self._client = client
        self._thread = threading.Thread(target=self._run, name="rel-publisher", daemon=True)

    def _on_connect(self, *_: object) -> None:
        with self._cond:
            self.connects += 1
            self._cond.notify_all()

    def _on_publish(self, *_: object) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def start(self) -> Publisher:
        with self._cond:
            assert self._cond.wait_for(lambda: self.connects > 0, 20), "publisher cannot connect"
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        for i in range(0, len(self.messages), self.CHUNK):
            ahead = t0 + i / self.rate_per_s - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            for topic, payload in self.messages[i : i + self.CHUNK]:
                self._client.publish(topic, payload, qos=1)
                self.sent += 1

    @property
    def fraction_sent(self) -> float:
        return self.sent / len(self.messages)

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        with self._cond:
            done = self._cond.wait_for(lambda: self.acked >= len(self.messages), timeout)
        self._client.disconnect()
        self._client.loop_stop()
        assert done, f"broker acknowledged {self.acked} of {len(self.messages)} messages"


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until true; returns the seconds it took."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t0


# ---------------------------------------------------------------------- an unwritable landing zone


def _mount(*args: str) -> bool:
    return (
        shutil.which("mount") is not None
        and subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0
    )


@contextlib.contextmanager
def read_only(*dirs: Path) -> Iterator[str]:
    """Make ``dirs`` (whole trees) unwritable for the ingest process while the block runs.

    root ignores permission bits (CAP_DAC_OVERRIDE), so as root each tree gets a read-only bind
    mount of itself: every create, rename and mkdir below it fails with EROFS, for root too, as
    on a filesystem the kernel remounted read-only after an I/O error. Without root, the
    directories lose their write bits (EACCES). Yields how ("ro bind mount" / "chmod a-w").
    """
    if os.geteuid() != 0:
        modes = {
            d: d.stat().st_mode for root in dirs for d in [root, *root.rglob("*")] if d.is_dir()
        }
        for d, mode in modes.items():
            d.chmod(mode & ~0o222)
        try:
            yield "chmod a-w"
        finally:
            for d, mode in modes.items():
                d.chmod(mode)
        return
    mounted: list[Path] = []
    try:
        for d in dirs:
            if not _mount("--bind", str(d), str(d)):
                pytest.skip(
                    "running as root without the right to mount: cannot make a dir unwritable"
                )
            mounted.append(d)
            if not _mount("-o", "remount,bind,ro", str(d)):
                pytest.skip("cannot remount a bind mount read-only here")
            probe = d / ".rel-probe"
            with pytest.raises(OSError):
                probe.touch()  # proves it: not even root can write there now
        yield "ro bind mount"
    finally:
        for d in reversed(mounted):
            if subprocess.run(["umount", str(d)], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", str(d)], check=True)  # busy: detach lazily


def files_created_between(roots: list[Path], t0: float, t1: float) -> list[Path]:
    """Parquet files under ``roots`` whose mtime (wall clock) falls in [t0, t1]."""
    return [
        p
        for root in roots
        if root.exists()
        for p in root.rglob("*.parquet")
        if t0 <= p.stat().st_mtime <= t1
    ]


# ---------------------------------------------------------------------- the warehouse


# Natural key of a stored reading per feed, and the value column the plan varies.
_KEY = {
    "air": "site_id, device_id, null::smallint as lane, observed_at",
    "waterlogging": "site_id, device_id, null::smallint as lane, observed_at",
    "traffic": "site_id, device_id, lane, observed_at",
}


@dataclass
class WarehouseCheck:
    expected: int  # unique readings (natural keys) the plan sent
    stored: int  # rows in core.obs_*
    lost: int  # expected keys with no row
    duplicated: int  # rows beyond one per key
    unexpected: int  # keys nobody sent
    wrong_value: int  # key present, value not the latest revision
    examples: list[Any] = field(default_factory=list)


def warehouse_check(settings: Settings, plan: Plan, run_id: str = "rel-faults") -> WarehouseCheck:
    """Load the landing zone with the ingest DAG's own steps; compare core.obs_* with the plan.

    The warehouse keeps one row per natural key; a revision replaces the earlier value (latest
    received wins). The plan's revision values (1000 + n) exceed every first value and grow, so
    the latest revision of a key is its largest expected value.
    """
    load(settings, run_id)
    want: dict[tuple, float] = {}
    for feed, site, dev, lane, obs, value in plan.expected_rows:
        key = (feed, site, dev, lane, obs)
        want[key] = max(value, want.get(key, value))
    got: Counter[tuple] = Counter()
    values: dict[tuple, float] = {}
    with db.reader(settings) as con:
        for feed, key_sql in _KEY.items():
            sql = f"select {key_sql}, {VALUE_COLUMN[feed]} from core.obs_{feed}"
            for site, dev, lane, obs, value in con.execute(sql).fetchall():
                key = (feed, site, dev, lane, obs)
                got[key] += 1
                values[key] = value
    lost = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and values[k] != want[k]]
    return WarehouseCheck(
        expected=len(want),
        stored=sum(got.values()),
        lost=len(lost),
        duplicated=sum(n - 1 for n in got.values() if n > 1),
        unexpected=len(unexpected),
        wrong_value=len(wrong),
        examples=(lost + unexpected + wrong)[:5],
    )


# ---------------------------------------------------------------------- counters


@dataclass
class Totals:
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    messages_received: int = 0
    messages_acked: int = 0


def reconcile(statuses: list[dict[str, Any]]) -> Totals:
    """Each run's status file balances (received = accepted + quarantined + duplicates); the sums."""
    t = Totals()
    for st in statuses:
        r = st["records"]
        assert st["invariant_ok"] is True, st
        assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"], r
        t.received += r["received"]
        t.accepted += r["accepted"]
        t.quarantined += r["quarantined"]
        t.duplicates += r["duplicates"]
        t.messages_received += st["messages"]["received"]
        t.messages_acked += st["messages"]["acked"]
    return t


def ingest_log_tail(home: Path, n: int = 3000) -> str:
    path = home / "ingest.log"
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def drain_and_stop(proc: Ingest, quiet_s: float = 2.0, timeout: float = 300) -> dict[str, Any]:
    """Wait until the daemon has taken and acknowledged everything (nothing pending, nothing new
    for ``quiet_s``), then SIGTERM it, as an operator would; returns its final status."""
    last = (-1, time.monotonic())

    def quiet() -> bool:
        nonlocal last
        st = proc.read_status()
        if not st or not st.get("connected"):
            return False
        m = st["messages"]
        if (
            m["received"] != last[0]
            or m["pending"]
            or m["acked"] + m["unacked_stale"] < m["received"]
        ):
            last = (m["received"], time.monotonic())
            return False
        return time.monotonic() - last[1] >= quiet_s

    wait_until(quiet, timeout, "the ingest service to drain the broker's queue", 0.1)
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0, ingest_log_tail(proc.status.parent.parent)
    return proc.read_status()
