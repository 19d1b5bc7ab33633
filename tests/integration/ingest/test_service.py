"""Integration: the ingest service against a real broker, in-process."""

from __future__ import annotations

import json
import threading

import pytest
from support.ingest_fixtures import landing_rows, publish, quarantine_reasons, temp_files
from support.payloads import make_plan

from common.settings import Settings
from ingestion.service import IngestService
from simulator.broker import BrokerHandle

pytestmark = pytest.mark.integration


def _run(service: IngestService) -> int:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(service.run()))
    t.start()
    t.join(timeout=180)
    assert not t.is_alive(), "ingest did not stop"
    return result[0]


def _status(settings: Settings) -> dict:
    return json.loads((settings.status_dir / "ingest.json").read_text())


def test_ingest_lands_each_reading_once_and_quarantines_faults(
    ingest_settings: Settings, broker: BrokerHandle
) -> None:
    plan = make_plan(3000, seed=1)
    # Subscribe once (creates the persistent session), then publish while the service is away:
    # the broker must queue everything for the session.
    assert _run(IngestService(ingest_settings, until_idle_s=1.0)) == 0
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=2.0)) == 0

    home = ingest_settings.home
    rows = landing_rows(home)
    assert rows == plan.expected_rows  # every valid reading exactly once, nothing else
    assert quarantine_reasons(home) == plan.expected_quarantine
    assert temp_files(home) == []

    st = _status(ingest_settings)
    r = st["records"]
    assert st["invariant_ok"] is True
    assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
    assert r["received"] == plan.records
    assert r["duplicates"] == plan.duplicates
    assert r["revisions"] == plan.revisions
    assert r["accepted"] == plan.valid_readings
    assert st["messages"]["received"] == st["messages"]["acked"] == len(plan.messages)
    assert st["feeds"]["unknown"]["quarantined"] == (
        plan.expected_quarantine["bad_topic"] + plan.expected_quarantine["unknown_feed"]
    )


def test_restart_recognises_redelivered_messages_as_duplicates(
    ingest_settings: Settings, broker: BrokerHandle
) -> None:
    plan = make_plan(500, seed=2, faults=False)
    assert _run(IngestService(ingest_settings, until_idle_s=1.0)) == 0
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=1.5)) == 0
    # The same messages again (as a broker would redeliver unacknowledged ones after a crash),
    # to a new process whose dedupe index must come from the landing files.
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=1.5)) == 0
    assert landing_rows(ingest_settings.home) == plan.expected_rows
    r = _status(ingest_settings)["records"]
    assert r["received"] == r["duplicates"] == plan.records
    assert r["accepted"] == 0


def test_amqtt_fallback_broker_round_trip(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The one test on amqtt (the fallback broker when Mosquitto is not installed); it does not
    # depend on the Mosquitto fixture, so it runs either way.
    from simulator.broker import start_broker

    plan = make_plan(300, seed=4)
    with start_broker(tmp_path / "amqtt", prefer="amqtt") as amqtt:
        assert amqtt.kind == "amqtt"
        s = settings.model_copy(update={"mqtt_url": amqtt.url, "flush_max_age_s": 0.3})
        # protocol "auto": amqtt never answers an MQTT 5 CONNECT, so this also covers the fallback.
        assert _run(IngestService(s, until_idle_s=1.0)) == 0
        assert _status(s)["protocol"] == "3.1.1"
        publish(amqtt, plan.messages)
        assert _run(IngestService(s, until_idle_s=2.0, protocol="3.1.1")) == 0
    assert landing_rows(s.home) == plan.expected_rows
    assert quarantine_reasons(s.home) == plan.expected_quarantine
    r = _status(s)["records"]
    assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"] == plan.records


def test_writer_thread_mode_round_trip(ingest_settings: Settings, broker: BrokerHandle) -> None:
    plan = make_plan(400, seed=6)
    assert _run(IngestService(ingest_settings, until_idle_s=1.0, worker="thread")) == 0
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=1.5, worker="thread")) == 0
    assert landing_rows(ingest_settings.home) == plan.expected_rows
    assert quarantine_reasons(ingest_settings.home) == plan.expected_quarantine
    st = _status(ingest_settings)
    assert st["invariant_ok"] is True
    assert st["messages"]["received"] == st["messages"]["acked"] == len(plan.messages)


def test_truncated_landing_file_is_set_aside_and_ingest_goes_on(
    ingest_settings: Settings, broker: BrokerHandle
) -> None:
    # Issue 7 finding 2: a truncated Parquet file made the dedupe index raise ArrowInvalid,
    # and the service exited 1 on the next message for that partition, on every restart.
    plan = make_plan(400, seed=5, faults=False)
    assert _run(IngestService(ingest_settings, until_idle_s=1.0)) == 0
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=1.5)) == 0
    home = ingest_settings.home
    victim = sorted((home / "landing").rglob("part-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    # A redelivery of everything: the partition of the broken file must be indexed again.
    publish(broker, plan.messages)
    assert _run(IngestService(ingest_settings, until_idle_s=1.5)) == 0
    rel = victim.relative_to(home / "landing")
    assert not victim.exists()
    assert (home / "unreadable" / "landing" / rel).exists()
    # The broken file's readings came again and landed anew; every other reading stays once.
    assert landing_rows(home) == plan.expected_rows
    assert _status(ingest_settings)["invariant_ok"] is True
