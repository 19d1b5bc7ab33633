"""Unit: accounting (received = accepted + quarantined + duplicates), status file, /metrics."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest
from support.payloads import make_plan

from common.settings import Settings
from ingestion.messages import Durable
from ingestion.metrics import FeedCounters, IngestMetrics, MetricsServer, write_status
from ingestion.service import IngestService
from ingestion.writer import LandingWriter


def test_flush_accounting_holds_for_every_feed(settings: Settings) -> None:
    # No broker: the writer's flush path (parse, dedupe, write, count) and the service's ack
    # accounting; the service never connected, so nothing can be acked.
    s = settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:9"})
    service = IngestService(s)
    writer = LandingWriter(s)
    plan = make_plan(400, seed=3)
    now = time.time()
    parsed = [writer.parse(topic, payload, now) for topic, payload in plan.messages]
    service.link.inflight.extend((0, mid, 1) for mid in range(1, len(parsed) + 1))
    half = len(parsed) // 2
    for chunk in (parsed[:half], parsed[half:]):
        result = writer.write(chunk)
        service.link.durable(Durable(len(chunk), result.counts, result.files, 0.01))
    assert not service.link.inflight
    snap = service.metrics.snapshot()
    assert snap["invariant_ok"] is True
    for feed, c in snap["feeds"].items():
        assert c["received"] == c["accepted"] + c["quarantined"] + c["duplicates"], feed
    r = snap["records"]
    assert r["received"] == plan.records
    assert r["duplicates"] == plan.duplicates
    assert r["accepted"] == plan.valid_readings
    assert r["revisions"] == plan.revisions
    assert r["quarantined"] == sum(plan.expected_quarantine.values())
    assert snap["messages"]["unacked_stale"] == len(parsed)  # never connected: nothing acked


def test_invariant_violation_is_reported_loudly(caplog: pytest.LogCaptureFixture) -> None:
    m = IngestMetrics()
    good = FeedCounters(received=3, accepted=2, duplicates=1)
    assert m.add_flush({"air": good}, files=1, acked=3, stale=0, seconds=0.01)
    broken = FeedCounters(received=5, accepted=2)  # three records unaccounted for
    with caplog.at_level(logging.ERROR):
        assert not m.add_flush({"water": broken}, files=1, acked=5, stale=0, seconds=0.01)
    assert "ACCOUNTING INVARIANT VIOLATED" in caplog.text
    snap = m.snapshot()
    assert snap["invariant_ok"] is False
    assert snap["invariant_violations"] == 1


def test_status_file_and_prometheus_endpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = IngestMetrics()
    c = FeedCounters(received=4, accepted=2, duplicates=1)
    c.quarantined["not_json"] += 1
    m.add_flush({"air": c}, files=2, acked=4, stale=0, seconds=0.02)
    path = tmp_path / "status" / "ingest.json"
    write_status(path, m.snapshot())
    doc = json.loads(path.read_text())
    assert doc["feeds"]["air"]["quarantined_by_reason"] == {"not_json": 1}
    assert doc["run_started_at"]
    assert [p.name for p in path.parent.iterdir()] == ["ingest.json"]

    server = MetricsServer(m, port=0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.stop()
    assert 'citypipe_ingest_records_received_total{feed="air"} 4' in text
    assert 'citypipe_ingest_records_quarantined_total{feed="air",reason="not_json"} 1' in text
    assert "citypipe_ingest_invariant_ok 1" in text
