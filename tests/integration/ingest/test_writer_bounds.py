"""Issue 7 findings 5 and 8 (pending gauge): the writer bounds the partitions one flush touches,
so a burst of many-day messages cannot hold acks past their bound; the status counts each
pending message once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from multiprocessing import Pipe

import paho.mqtt.client as mqtt

from common.settings import Settings
from ingestion.messages import Bye, Durable, Handover, Stop
from ingestion.service import IngestService
from ingestion.writer import LandingWriter, WriterConfig, _loop

BASE = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _month_message(first_day: int) -> tuple[str, bytes, float]:
    # 31 readings on 31 distinct local dates: the most one message may span (too_many_dates).
    batch = [
        {"schema": "air/v1", "site_id": "WS-AIR-01", "device_id": "AQM-0101", "seq": i,
         "observed_at": (BASE - timedelta(days=first_day + i)).isoformat(), "period_s": 60,
         "values": {"pm25": 10.0}}
        for i in range(31)
    ]  # fmt: skip
    return "city/wushan/air/WS-AIR-01", json.dumps(batch).encode(), BASE.timestamp()


def test_a_flush_touches_at_most_flush_max_partitions(settings: Settings) -> None:
    ours, theirs = Pipe()
    config = WriterConfig(
        settings, flush_max_records=100_000, flush_max_messages=100_000, flush_max_age_s=5.0,
        dedupe_max_entries=1_000_000, flush_max_partitions=64,
    )  # fmt: skip
    writer = LandingWriter(settings)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(_loop(theirs, config, writer)))
    t.start()
    # Three messages, 93 partitions: one flush would write 93 files before any ack.
    ours.send(Handover([_month_message(0), _month_message(31), _month_message(62)]))
    ours.send(Stop())
    replies = []
    while True:
        reply = ours.recv()
        replies.append(reply)
        if isinstance(reply, Bye):
            break
    t.join(10)
    assert result == [0]
    flushes = [(r.messages, r.files) for r in replies if isinstance(r, Durable)]
    assert flushes == [(2, 62), (1, 31)]  # (messages acked, files written) per flush
    assert sum(1 for _ in settings.landing_dir.rglob("*.parquet")) == 93


def test_pending_gauge_counts_each_message_once(settings: Settings) -> None:
    # Never connects: the gauge is what the status file shows while messages wait.
    service = IngestService(settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1"}))
    for mid in range(1, 446):
        msg = mqtt.MQTTMessage(mid=mid, topic=b"city/wushan/air/WS-AIR-01")
        msg.payload = b"{}"
        msg.qos = 1
        service.session._on_message(None, None, msg)
    service._write_status()
    status = json.loads(service.status_path.read_text())
    assert status["messages"]["pending"] == 445  # was 890: hand-over batch counted twice
