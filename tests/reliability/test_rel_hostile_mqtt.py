"""Hostile input over MQTT: every case of tests/data/hostile/cases.toml through a real Mosquitto
(the project's config) into the real `citypipe ingest` process.

Per message: quarantined with the expected reason and a printable detail showing what was wrong,
or landed as exactly the reading meant (the landing row's values), or refused by the broker
(never reaching the ingest). Per run: the process is alive after the last case, exits 0 on
SIGTERM, and received = accepted + quarantined + duplicates, per feed and in total.

The order of events, and why:
1. A first ingest run (``--until-idle``) creates the persistent session and its subscription.
2. The retained cases are published while the ingest is down: Mosquitto queues them for the
   session (QoS 1) *and* keeps them as retained messages.
3. The main ingest runs; all other cases are published at their QoS (0, 1 or 2, MQTT 5
   properties where the case has them). QoS 0 is published while the ingest is connected: the
   broker does not queue QoS 0 for an offline session (``queue_qos0_messages`` is off), and no
   ack exists to make it redeliver; a QoS 0 message that reaches the ingest is parsed, landed
   and accepted like any other (its ack is skipped).
4. SIGTERM: exit 0. A last run re-subscribes: the subscription exists in the session, and the
   ingest subscribes with MQTT 5 retain handling 1 (retained only for a new subscription), so
   the broker does not send the retained messages again; they were taken once, queued.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pyarrow.parquet as pq
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.ingest_process import Ingest
from support.rel_hostile import ACCEPT, BROKER_REFUSES, CASES, Message, messages
from support.reliability import Figures, at_scale

from common.settings import Settings
from ingestion.schema import VALUE_COLUMNS
from simulator.broker import BrokerHandle
from steps.ingest import load_feed, validate_feed
from warehouse import db
from warehouse.ledger import discover_new_files

FLOOD = at_scale(ci=3000, full=20_000)


def _properties(m: Message) -> Properties | None:
    if not m.mqtt5:
        return None
    props = Properties(PacketTypes.PUBLISH)
    if "content_type" in m.mqtt5:
        props.ContentType = m.mqtt5["content_type"]
    if "payload_format_indicator" in m.mqtt5:
        props.PayloadFormatIndicator = m.mqtt5["payload_format_indicator"]
    users = [tuple(kv) for kv in m.mqtt5.get("user", [])]
    if "user_value_bytes" in m.mqtt5:
        users.append(("x", "x" * m.mqtt5["user_value_bytes"]))
    if users:
        props.UserProperty = users
    return props


class _Publisher:
    """One MQTT 5 client; ``send`` waits until the broker has taken every message."""

    def __init__(self, broker: BrokerHandle, client_id: str) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(500)
        self.disconnect_reason: str | None = None
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert connected.wait(10), "publisher could not connect"

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnect_reason = str(rc)

    def send(self, batch: list[Message]) -> int:
        infos = []
        for m in batch:
            for _ in range(m.copies):
                infos.append(
                    self.client.publish(
                        m.topic, m.payload, qos=m.qos, retain=m.retain, properties=_properties(m)
                    )
                )
        for info in infos:
            info.wait_for_publish(timeout=120)
            assert info.is_published(), "broker did not take a message"
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _refused_by_broker(broker: BrokerHandle, m: Message, n: int) -> bool:
    """Publish on a client of its own; True if the broker cut it off without acknowledging."""
    pub = _Publisher(broker, f"hostile-refused-{n}")
    info = pub.client.publish(m.topic, m.payload, qos=1)
    deadline = time.monotonic() + 10
    while pub.disconnect_reason is None and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = pub.disconnect_reason == "Malformed packet" and not info.is_published()
    pub.client.loop_stop()
    return refused


def _rows(root: Path, pattern: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
        out.extend(pq.read_table(path).to_pylist())
    return out


def _records(m: Message) -> int:
    # A batch of identical readings is one message of many records.
    return m.payload.count(b'"schema"') if m.payload.startswith(b"[") else 1


def _status_sum(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"received": 0, "accepted": 0, "duplicates": 0, "reasons": Counter()}
    for st in statuses:
        assert st["invariant_ok"] is True, st["invariant_violations"]
        for feed, c in st["feeds"].items():
            assert c["received"] == c["accepted"] + c["quarantined"] + c["duplicates"], feed
            total["received"] += c["received"]
            total["accepted"] += c["accepted"]
            total["duplicates"] += c["duplicates"]
            total["reasons"].update(c["quarantined_by_reason"])
    return total


def test_every_hostile_case_through_mosquitto_and_citypipe_ingest(
    home: Path, settings: Settings, mosquitto_broker: BrokerHandle, figures: Figures
) -> None:
    started = time.monotonic()
    url = mosquitto_broker.url
    msgs = messages(flood=FLOOD)
    retained = [m for m in msgs if m.retain]
    refused = [m for m in msgs if m.expect == BROKER_REFUSES]
    live = [m for m in msgs if not m.retain and m.expect != BROKER_REFUSES]
    assert retained and refused and any(m.qos == 0 for m in live) and any(m.qos == 2 for m in live)

    first = Ingest(home, url, "--until-idle", "1")
    assert first.wait() == 0, (home / "ingest.log").read_text()[-3000:]
    st_first = first.read_status()  # the status file is the next run's too

    pub = _Publisher(mosquitto_broker, "hostile-pub")
    try:
        pub.send(retained)  # the ingest is down: queued for its session, and kept as retained
        main = Ingest(home, url)
        main.wait_for(lambda st: st.get("connected"))
        sent = pub.send(live)
    finally:
        pub.close()
    refused_ok = [_refused_by_broker(mosquitto_broker, m, i) for i, m in enumerate(refused)]
    assert all(refused_ok), [m.case for m, ok in zip(refused, refused_ok, strict=True) if not ok]

    # Each retained message arrives once in this run: the copy queued for the session. The
    # re-subscription on connect does not bring the retained copy again (retain handling 1).
    want_messages = sent + len(retained)
    want_records = sum(_records(m) * m.copies for m in live) + len(retained)
    st_main = main.wait_for(
        lambda st: (
            st["messages"]["received"] >= want_messages
            and st["records"]["received"] >= want_records
            and st["messages"]["pending"] == 0
        ),
        timeout=at_scale(ci=120, full=600),
    )
    assert main.proc.poll() is None, "ingest died during the hostile cases"
    assert st_main["messages"]["received"] == want_messages
    assert st_main["records"]["received"] == want_records
    main.signal(signal.SIGTERM)
    assert main.wait() == 0
    st_main = main.read_status()
    # Every message is acknowledged once durable, but for QoS 0 ones: there is nothing to ack.
    qos0 = sum(m.copies for m in live if m.qos == 0)
    assert st_main["messages"]["acked"] == want_messages - qos0

    last = Ingest(home, url, "--until-idle", "2")
    assert last.wait() == 0
    st_last = last.read_status()
    # No retained message again on the re-subscription: nothing to count twice.
    assert st_last["messages"]["received"] == 0
    assert st_last["records"]["duplicates"] == 0

    # ---- per message: what landed, what was quarantined, and why
    landing: list[dict[str, Any]] = []
    for feed in VALUE_COLUMNS:
        landing += _rows(home / "landing" / feed, "local_date=*/part-*.parquet")
    quarantine = _rows(home / "quarantine", "received_date=*/part-*.parquet")
    quarantined_by = {}
    for r in quarantine:
        quarantined_by.setdefault((r["topic"], bytes(r["payload"])), []).append(r)

    accepted = [m for m in msgs if m.expect == ACCEPT]
    failures: list[str] = []
    for m in accepted:
        assert m.row is not None
        want = {"site_id": "WS-AIR-01", "device_id": "AQM-0101", "seq": 1, **m.row}
        hits = [
            r
            for r in landing
            if r["site_id"] == want["site_id"]
            and r["device_id"] == want["device_id"]
            and r["observed_at"].isoformat() == want["observed_at"]
        ]
        if len(hits) != 1:
            failures.append(f"{m.case}: {len(hits)} landing rows")
            continue
        got = {k: hits[0][k] for k in want}
        got["observed_at"] = hits[0]["observed_at"].isoformat()
        if got != want:
            failures.append(f"{m.case}: landed {got}, meant {want}")
    if len(landing) != len(accepted):
        failures.append(f"{len(landing)} landing rows for {len(accepted)} accepted cases")

    quarantined = [m for m in msgs if m.expect not in (ACCEPT, BROKER_REFUSES)]
    for m in quarantined:
        stored = m.payload if len(m.payload) <= 262144 else m.payload[:4096]
        rows = quarantined_by.get((m.topic, stored), [])
        if len(rows) != 1:
            failures.append(f"{m.case}: {len(rows)} quarantine rows")
            continue
        (row,) = rows
        if row["reason"] != m.expect:
            failures.append(f"{m.case}: {row['reason']} ({row['detail']}), meant {m.expect}")
        if not (row["detail"] and row["detail"].isprintable() and m.detail in row["detail"]):
            failures.append(f"{m.case}: detail {row['detail']!r} unreadable or lacks {m.detail!r}")
    if len(quarantine) != len(quarantined):
        failures.append(f"{len(quarantine)} quarantine rows for {len(quarantined)} cases")
    for m in refused:
        if any(r["topic"] == m.topic for r in quarantine):
            failures.append(f"{m.case}: refused by the broker, yet reached the ingest")
    assert failures == []

    # ---- the reboot's seq reset through the ingest DAG's steps (discover, validate, load):
    # dq.seq_gaps records it as a 'reset' with nothing missing, not a gap of 5000 readings.
    found = discover_new_files(settings)
    for feed in VALUE_COLUMNS:
        load_feed(settings, validate_feed(settings, feed, found[feed], "hostile"))
    with db.reader(settings) as con:
        seq_rows = con.execute(
            "select kind, seq_before, seq_after, missing_count from dq.seq_gaps"
            " where device_id = ? order by observed_at_after",
            ["AQM-0103"],
        ).fetchall()
    assert seq_rows == [("reset", 5000, 0, 0)]

    # ---- accounting over the three runs
    total = _status_sum([st_first, st_main, st_last])
    want_reasons = Counter(m.expect for m in quarantined)
    want_duplicates = sum(_records(m) * m.copies - 1 for m in live)
    assert total["reasons"] == want_reasons
    assert total["accepted"] == len(accepted)
    assert total["duplicates"] == want_duplicates
    assert total["received"] == total["accepted"] + sum(want_reasons.values()) + want_duplicates

    figures.add("hostile cases (kinds) in cases.toml", len(CASES), "cases")
    figures.add("distinct hostile messages", len(msgs), "messages", "injection cases: 1 per string")
    figures.add("messages published", sent + len(retained) + len(refused), "messages")
    figures.add("records received by ingest", total["received"], "records", "3 runs")
    figures.add("accepted", total["accepted"], "readings", "each checked value by value")
    figures.add("quarantined", sum(want_reasons.values()), "records")
    for reason, n in sorted(want_reasons.items()):
        figures.add(f"quarantined: {reason}", n, "records")
    figures.add("duplicates", total["duplicates"], "records", f"flood {FLOOD}")
    figures.add("seq reset after reboot (5000 -> 0)", "reset", "", "dq.seq_gaps missing_count 0")
    figures.add("refused by the broker", len(refused), "messages", "control char/NUL in topic")
    figures.add("QoS 0 messages accepted, not acked", qos0, "messages", "no ack exists")
    figures.add("crashes", 0, "", "alive after the last case; exit 0 x3")
    figures.add("elapsed", time.monotonic() - started, "s")
