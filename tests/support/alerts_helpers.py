"""Helpers of the alert tests and benchmark: sensor payloads as docs/feeds.md specifies them, an
alert-topic subscriber, and `citypipe alerts` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

CST = timezone(timedelta(hours=8))


def reading(feed: str, site: str, device: str, seq: int, at: datetime, period_s: int, values: dict[str, float]) -> bytes:  # fmt: skip
    doc = {
        "schema": f"{feed}/v1",
        "site_id": site,
        "device_id": device,
        "seq": seq,
        "observed_at": at.astimezone(CST).isoformat(),
        "period_s": period_s,
        "values": values,
        "flags": [],
    }
    return json.dumps(doc).encode()


class AlertWatcher:
    """Subscribes to city/{city}/alert/#: every message in order, and the retained ones at connect."""

    def __init__(
        self, host: str, port: int, city: str = "wushan", client_id: str = "watcher"
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[float, str, bytes, bool]] = []  # (time, topic, payload, retain)
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"city/{city}/alert/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "watcher could not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.cond:
            self.messages.append(
                (time.monotonic(), msg.topic, bytes(msg.payload), bool(msg.retain))
            )
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30) -> list[tuple[float, str, bytes, bool]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.messages), timeout=timeout)
            assert ok, f"timed out; got {[(t, p[:80]) for _, t, p, _ in self.messages]}"
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(host: str, port: int, city: str = "wushan", wait_s: float = 1.5) -> dict[str, bytes]:
    """The retained alert messages a client that connects now gets (topic -> payload)."""
    w = AlertWatcher(host, port, city, client_id=f"retained-{time.monotonic_ns()}")
    time.sleep(wait_s)
    w.close()
    return {t: p for _, t, p, r in w.messages if r}


class AlertsProcess:
    """One `citypipe alerts` subprocess."""

    def __init__(
        self, home: Path, url: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        from common.settings import REPO_ROOT

        self.status = home / "status" / "alerts.json"
        env = {**os.environ, "CITYPIPE_HOME": str(home), "CITYPIPE_MQTT_URL": url, **(env or {})}
        self.log = open(home / "alerts.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "alerts", "--status-interval", "0.2", *extra],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_connected(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.read_status()
            if st.get("connected") and st.get("publisher_connected"):
                return
            assert self.proc.poll() is None, "citypipe alerts exited"
            time.sleep(0.05)
        raise AssertionError(f"not connected: {self.read_status()}")

    def stop(self, timeout: float = 30) -> int:
        self.proc.terminate()  # SIGTERM
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
