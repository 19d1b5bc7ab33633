"""The malformed corpus end to end: every case through a real Mosquitto into the ingest service.

test_corpus.py checks each case against the parser alone; here the same bytes go over MQTT
(project broker config) to ``IngestService`` and must come out as the corpus says: quarantine rows
per reason, accepted readings in the landing zone, and the per-feed accounting equation.

Two deliberate adjustments, both because the service stamps ``received_at`` with the wall clock
while the corpus pins it to 2026-11-28T06:00Z:
- ``future_timestamp`` is re-dated to one day after now (otherwise it ages into an accept);
- the test skips on a machine whose clock is before the corpus's received_at (every accept would
  then be a future timestamp).

Topics outside the subscription ``city/wushan/+/+`` are published too; a plain ``#`` subscriber
proves the broker routed them, and the service must not see them at all (no row, no count).

Broker limits: deploy/mosquitto/mosquitto.conf sets neither ``message_size_limit`` nor
``max_packet_size`` (Mosquitto's defaults: no limit below the protocol's 256 MiB), so the 1 MiB
case reaches the service and is quarantined as ``too_large`` (a prefix kept, the size recorded).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pyarrow.parquet as pq
import pytest
from support.corpus import CASES, RECEIVED, _payload

from common.settings import Settings
from ingestion.schema import VALUE_COLUMNS
from ingestion.service import IngestService
from simulator.broker import CONF_DIR, BrokerHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBSCRIPTION = "city/wushan/+/+"


def _inside(topic: str) -> bool:
    return mqtt.topic_matches_sub(SUBSCRIPTION, topic)


def _messages(now: datetime) -> list[tuple[dict[str, Any], bytes]]:
    out = []
    for case in CASES:
        payload = _payload(case)
        if case["expect"] == "future_timestamp":
            doc = json.loads(payload)
            doc["observed_at"] = (now + timedelta(days=1)).isoformat()
            payload = json.dumps(doc).encode()
        out.append((case, payload))
    return out


def _records(case: dict[str, Any], payload: bytes) -> tuple[int, int]:
    """(records the service counts, valid readings) for one case, from the corpus's expectation."""
    if case["expect"] == "accept":
        n = case.get("accepted", 1)
        return n, n
    if case["expect"] == "batch":
        return len(json.loads(payload)), case["accepted"]
    return 1, 0


def _feed(case: dict[str, Any]) -> str:
    # A bad topic (e.g. an empty site level) names no feed, even if its feed level looks right.
    parts = case["topic"].split("/")
    if case["expect"] == "bad_topic" or parts[2] not in VALUE_COLUMNS:
        return "unknown"
    return parts[2]


def _run(service: IngestService) -> int:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(service.run()))
    t.start()
    t.join(timeout=180)
    assert not t.is_alive(), "ingest did not stop"
    return result[0]


class _Watcher:
    """A plain ``#`` subscriber: proves the broker routed each message, whatever its topic."""

    def __init__(self, broker: BrokerHandle) -> None:
        self.topics: list[str] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="corpus-watch")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()
        assert ready.wait(10), "watcher subscription not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.topics.append(msg.topic)

    def wait_for(self, n: int, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.topics) < n:
            time.sleep(0.05)
        with self._lock:
            return list(self.topics)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(broker: BrokerHandle, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="corpus-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published(), "broker did not acknowledge a corpus message"
    finally:
        client.disconnect()
        client.loop_stop()


def _read(root: Path, pattern: str, columns: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
        rows.extend(pq.read_table(path, columns=columns).to_pylist())
    return rows


def test_project_broker_config_has_no_size_limit() -> None:
    # If someone adds one, the 1 MiB case stops at the broker: update the test below and docs.
    words = [
        line.split()[0]
        for line in (CONF_DIR / "mosquitto.conf").read_text("utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "message_size_limit" not in words
    assert "max_packet_size" not in words


def test_every_corpus_case_through_mosquitto_and_the_service(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    now = datetime.now(UTC)
    if now < RECEIVED:
        pytest.skip(f"machine clock {now} is before the corpus's received_at {RECEIVED}")
    assert mosquitto_broker.kind == "mosquitto"
    s = settings.model_copy(update={"mqtt_url": mosquitto_broker.url, "flush_max_age_s": 0.3})
    messages = _messages(now)
    inside = [(c, p) for c, p in messages if _inside(c["topic"])]
    outside = {c["topic"] for c, _ in messages if not _inside(c["topic"])}
    assert outside, "the corpus should have topics the subscription cannot see"
    assert any(len(p) >= 1024 * 1024 for _, p in inside), "the 1 MiB case must be published"

    # Create the persistent session first; the broker then queues everything for it.
    assert _run(IngestService(s, until_idle_s=1.0)) == 0
    watcher = _Watcher(mosquitto_broker)
    try:
        _publish(mosquitto_broker, [(c["topic"], p) for c, p in messages])
        routed = watcher.wait_for(len(messages))
    finally:
        watcher.close()
    assert Counter(routed) == Counter(c["topic"] for c, _ in messages)
    assert _run(IngestService(s, until_idle_s=2.0)) == 0

    # Expectations from the corpus, for the cases the subscription delivers.
    want_reasons: Counter[str] = Counter()
    want_received: Counter[str] = Counter()
    want_valid: Counter[str] = Counter()
    for case, payload in inside:
        records, valid = _records(case, payload)
        want_received[_feed(case)] += records
        want_valid[_feed(case)] += valid
        if case["expect"] == "batch":
            want_reasons.update(case["reasons"])
        elif case["expect"] != "accept":
            want_reasons[case["expect"]] += 1

    quarantine = _read(
        s.home / "quarantine",
        "received_date=*/part-*.parquet",
        ["topic", "reason", "payload_bytes"],
    )
    assert Counter(r["reason"] for r in quarantine) == want_reasons
    assert not outside & {r["topic"] for r in quarantine}, "an unsubscribed topic reached us"
    (big,) = [r for r in quarantine if r["payload_bytes"] >= 1024 * 1024]
    assert big["reason"] == "too_large"

    st = json.loads((s.status_dir / "ingest.json").read_text())
    assert st["invariant_ok"] is True
    assert st["messages"]["received"] == st["messages"]["acked"] == len(inside)
    feeds = st["feeds"]
    assert {f: c["received"] for f, c in feeds.items() if c["received"]} == dict(want_received)
    for feed, c in feeds.items():
        assert c["received"] == c["accepted"] + c["quarantined"] + c["duplicates"], feed
        # Every valid reading is stored (new or revision) or recognised as a duplicate.
        assert c["accepted"] + c["duplicates"] == want_valid[feed], feed
        landed = _read(s.home / "landing" / feed, "local_date=*/part-*.parquet", ["site_id"])
        assert len(landed) == c["accepted"], feed
    assert sum(c["quarantined"] for c in feeds.values()) == sum(want_reasons.values())
    assert sum(want_valid.values()) > 0
