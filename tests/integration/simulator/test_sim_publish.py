"""The simulator's publisher against a real (private) Mosquitto, read back by a plain subscriber."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from citypipe.cli import main
from common.catalogue import Catalogue
from simulator.simulate import Publisher, SimMessage, generate, publish

pytestmark = pytest.mark.integration


class Subscriber:
    """Collects what the ingest service would see: city/wushan/+/+ (QoS 1), in arrival order."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test-sub", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.connect(host, int(port))
        self.client.subscribe("city/wushan/+/+", qos=1)
        self.client.loop_start()
        assert self._ready.wait(10), "subscription not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, msg.payload))

    def wait_for(self, n: int, timeout: float = 60.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.got) >= n:
                    break
            time.sleep(0.05)
        time.sleep(0.2)  # anything beyond n would be a bug: give it a moment to show up
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: str) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto)
    yield sub
    sub.close()


def _by_topic(pairs: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in pairs:
        out[topic].append(payload)
    return out


def test_publish_a_few_thousand_with_faults(
    catalogue: Catalogue, mosquitto: str, subscriber: Subscriber
) -> None:
    msgs = list(itertools.islice(generate(catalogue, date(2026, 7, 14), 1, 3, "heavy"), 4000))
    kinds = {m.kind for m in msgs}
    assert {"malformed", "duplicate", "reading"} <= kinds
    # A small in-flight cap forces the flow control to work.
    stats = publish(msgs, mosquitto, max_inflight=50, progress=False)
    assert stats.messages == len(msgs)
    assert stats.records == sum(m.records for m in msgs)
    assert stats.protocol == "MQTT 5"
    got = subscriber.wait_for(len(msgs))
    assert len(got) == len(msgs)
    # Same bytes, same per-topic order (MQTT keeps order per publisher and topic at QoS 1).
    assert _by_topic(got) == _by_topic([(m.topic, m.payload) for m in msgs])


def test_realtime_waits_for_send_time(mosquitto: str, subscriber: Subscriber) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    msgs = [
        SimMessage(f"city/wushan/air/T{i}", b"{}", "reading", "accept", ("accept",), soon)
        for i in range(5)
    ]
    stats = publish(msgs, mosquitto, realtime=True, progress=False)
    assert stats.messages == 5
    assert datetime.now(UTC) >= soon
    assert len(subscriber.wait_for(5)) == 5


def test_qos0_publish(mosquitto: str, subscriber: Subscriber) -> None:
    now = datetime.now(UTC)
    msgs = [SimMessage("city/wushan/air/Q", b"{}", "reading", "accept", ("accept",), now)] * 20
    pub = Publisher(mosquitto, qos=0)
    try:
        assert pub.publish_all(msgs, progress=False).messages == 20
        assert pub.outstanding == 0
    finally:
        pub.close()
    assert len(subscriber.wait_for(20)) == 20


def test_cli_publishes_with_limit(
    mosquitto: str, subscriber: Subscriber, settings: object, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "simulate",
            "--url",
            mosquitto,
            "--start",
            "2026-02-02",
            "--feeds",
            "air,traffic",
            "--limit",
            "1500",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert "published 1500 messages" in capsys.readouterr().out
    assert len(subscriber.wait_for(1500)) == 1500


def test_cli_refuses_the_future_and_missing_broker(
    settings: object, mosquitto: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert main(["simulate", "--url", mosquitto, "--start", tomorrow]) == 2
    assert "future" in capsys.readouterr().err
    assert main(["simulate", "--start", "2026-01-01"]) == 2  # no --url, no CITYPIPE_MQTT_URL
    assert "no broker" in capsys.readouterr().err


def test_unreachable_broker_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(ConnectionError, match="cannot reach"):
            Publisher(f"mqtt://127.0.0.1:{port}")


@pytest.mark.slow
def test_falls_back_to_mqtt_311(catalogue: Catalogue, tmp_path: Path) -> None:
    """amqtt speaks only MQTT 3.1.1: the publisher must notice and retry with 3.1.1."""
    # simulator.broker's amqtt cancels its leftover tasks on stop (no "Task was destroyed").
    from simulator.broker import start_broker

    with start_broker(tmp_path / "amqtt", prefer="amqtt") as broker:
        assert broker.kind == "amqtt"
        msgs = list(itertools.islice(generate(catalogue, date(2026, 4, 1), 1, 1, "none"), 300))
        stats = publish(msgs, broker.url, progress=False)
        assert stats.protocol == "MQTT 3.1.1"
        assert stats.messages == 300


def test_url_password_is_ignored_with_a_warning(
    mosquitto: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Secrets only from the environment or a *_FILE (via settings), never from the broker URL.
    url = mosquitto.replace("mqtt://", "mqtt://sim:url-secret@")
    with caplog.at_level("WARNING", logger="simulator.simulate"):
        pub = Publisher(url, password="from-settings")
    try:
        assert pub.username == "sim"
        assert pub.password == "from-settings"
    finally:
        pub.close()
    assert "password in the MQTT URL ignored" in caplog.text
    assert "url-secret" not in caplog.text
