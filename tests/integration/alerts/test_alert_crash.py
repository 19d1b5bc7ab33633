"""`citypipe alerts` SIGKILLed while readings stream in, then restarted: the store ends exactly as
an uninterrupted run of the same rules over the same readings (no alert lost, none doubled)."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.alerts_helpers import AlertsProcess, AlertWatcher, reading
from support.ingest_fixtures import publish

from alerts.rules import Alert, Engine, Observation
from alerts.store import read_recent, store_path
from common.catalogue import Catalogue
from common.settings import REPO_ROOT, Settings
from simulator.broker import BrokerHandle

pytestmark = pytest.mark.integration

# Per point: two storms (rise through the levels, fall, dry spell).
STORM = [0.0, 10.0, 16.0, 18.0, 20.0, 27.0, 30.0, 33.0, 42.0, 44.0, 41.0, 30.0] + [5.0] * 14


def _expected(catalogue: Catalogue, obs: list[Observation]) -> tuple[dict[str, Alert], int]:
    """The final state of every alert an uninterrupted run gives, and how many changes."""
    e = Engine(catalogue, REPO_ROOT / "reference", now=datetime.now(UTC))
    final: dict[str, Alert] = {}
    n = 0
    for o in obs:
        for c in e.observe(o):
            if c.alert.kind == "waterlogging":
                final[c.alert.id] = c.alert
                n += 1
    return final, n


def test_sigkill_and_restart_give_the_same_alerts(
    settings: Settings, mosquitto_broker: BrokerHandle, catalogue: Catalogue
) -> None:
    b = mosquitto_broker
    points = sorted(catalogue.by_kind("waterlogging_point"), key=lambda s: s.site_id)[:6]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    messages, observations = [], []
    curve = STORM * 2
    for k, depth in enumerate(curve):  # interleaved as real points report, minute by minute
        at = start + timedelta(minutes=k)
        for p in points:
            dev = p.device_ids[0]
            payload = reading("waterlogging", p.site_id, dev, k, at, 60, {"depth_cm": depth})
            messages.append((f"city/wushan/waterlogging/{p.site_id}", payload))
            observations.append(
                Observation("waterlogging", p.site_id, dev, at, 60, {"depth_cm": depth}, "", at)
            )
    expected, n_changes = _expected(catalogue, observations)
    assert len(expected) == 2 * len(points)

    watcher = AlertWatcher(b.host, b.port)
    service = AlertsProcess(settings.home, b.url)
    service.wait_connected()

    def paced() -> None:
        for i in range(0, len(messages), 4):
            publish(b, messages[i : i + 4], client_id="paced")
            time.sleep(0.01)

    pub = threading.Thread(target=paced, daemon=True)
    pub.start()
    watcher.wait_for(lambda m: len(m) >= 3)  # some alerts are out: kill in the middle
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(10)
    assert len(watcher.messages) < n_changes  # killed with alerts still to come
    service.log.close()
    pub.join(120)
    assert not pub.is_alive()

    service = AlertsProcess(settings.home, b.url)
    service.wait_connected()
    deadline = time.monotonic() + 60
    got: dict[str, Alert] = {}
    while time.monotonic() < deadline:
        got = {
            a.id: a
            for a in read_recent(store_path(settings.home), start - timedelta(days=1))
            if a.kind == "waterlogging"
        }
        if len(got) >= len(expected) and all(a.cleared_at for a in got.values()):
            break
        time.sleep(0.2)
    assert service.stop() == 0
    watcher.close()

    def view(a: Alert) -> tuple[object, ...]:
        return (a.site_id, a.level, a.started_at, a.cleared_at, a.peak_value, a.threshold)

    assert {i: view(a) for i, a in got.items()} == {i: view(a) for i, a in expected.items()}
