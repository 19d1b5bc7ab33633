"""Fixtures for the ingest tests: a real broker on a free port, publishing and reading helpers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common.settings import Settings
from ingestion.schema import VALUE_COLUMNS
from simulator.broker import BrokerHandle

VALUE_COLUMN = {"air": "pm25_ugm3", "waterlogging": "depth_cm", "traffic": "volume_veh"}


@pytest.fixture
def broker(mosquitto_broker: BrokerHandle) -> BrokerHandle:
    # The shared real-Mosquitto fixture (tests/conftest.py) under the name these tests use.
    return mosquitto_broker


@pytest.fixture
def ingest_settings(settings: Settings, broker: BrokerHandle) -> Settings:
    # Short flush age keeps the tests quick; the client id is per test (brokers are per test too).
    return settings.model_copy(update={"mqtt_url": broker.url, "flush_max_age_s": 0.3})


def publish(
    handle: BrokerHandle, messages: Iterable[tuple[str, bytes]], *, client_id: str = "test-pub"
) -> int:
    """Publish at QoS 1 and wait until the broker has acknowledged every message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if handle.username:
        client.username_pw_set(handle.username)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    done = threading.Condition()
    acked = [0]

    def on_publish(*_: object) -> None:
        with done:
            acked[0] += 1
            done.notify_all()

    client.on_connect = lambda *a: connected.set()
    client.on_publish = on_publish
    client.connect(handle.host, handle.port)
    client.loop_start()
    assert connected.wait(10), "publisher could not connect"
    n = 0
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
        n += 1
    with done:
        assert done.wait_for(lambda: acked[0] >= n, timeout=300), "broker did not ack all"
    client.disconnect()
    client.loop_stop()
    return n


def landing_rows(home: Path) -> Counter[tuple]:
    """(feed, site, device, lane, observed_at, main value) -> number of rows in the landing zone."""
    out: Counter[tuple] = Counter()
    root = home / "landing"
    for feed in VALUE_COLUMNS:
        for path in sorted((root / feed).glob("local_date=*/part-*.parquet")):
            t = pq.read_table(path)
            cols = [
                t.column(c).to_pylist() for c in ("site_id", "device_id", "lane", "observed_at")
            ]
            vals = (
                t.column(VALUE_COLUMN[feed]).to_pylist()
                if feed in VALUE_COLUMN
                else [None] * len(t)
            )
            for site, dev, lane, obs, v in zip(*cols, vals, strict=True):
                out[(feed, site, dev, lane, obs, v)] += 1
    return out


def quarantine_reasons(home: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    for path in sorted((home / "quarantine").glob("received_date=*/part-*.parquet")):
        out.update(pq.read_table(path, columns=["reason"]).column("reason").to_pylist())
    return out


def temp_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*.tmp")] + [p for p in home.rglob(".part-*")]
