"""Deterministic test traffic with known outcomes: readings, exact re-deliveries, revisions,
batches and malformed messages, plus what the landing zone and quarantine must hold afterwards."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8))
CITY = "wushan"

# (feed, site_id, device_id, lane, period_s) streams from the Wushan catalogue.
STREAMS: list[tuple[str, str, str, int | None, int]] = [
    *[("air", f"WS-AIR-0{i}", f"AQM-0{i}01", None, 60) for i in range(1, 5)],
    *[("waterlogging", f"WS-WLG-0{i}", f"WLG-0{i}01", None, 60) for i in range(1, 5)],
    *[
        ("traffic", f"WS-TRF-0{i}", f"TRF-0{i}01", lane, 300)
        for i in range(1, 4)
        for lane in (1, 2)
    ],
]

# Whole-message and per-reading faults: (kind, expected reason, expected feed counter).
MALFORMED = [
    "not_json",
    "unknown_site",
    "naive_timestamp",
    "bad_number",
    "bad_topic",
    "unknown_feed",
    "batch_bad_reading",
]


@dataclass
class Plan:
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    # One entry per row the landing zone must hold: (feed, site, device, lane, observed_at UTC, value).
    expected_rows: Counter[tuple] = field(default_factory=Counter)
    expected_quarantine: Counter[str] = field(default_factory=Counter)  # reason -> rows
    duplicates: int = 0  # planned exact re-deliveries (records)
    revisions: int = 0
    records: int = 0  # records the service must count as received (no broker redelivery)

    @property
    def valid_readings(self) -> int:
        return sum(self.expected_rows.values())


def _value(feed: str) -> str:
    return {"air": "pm25", "waterlogging": "depth_cm", "traffic": "volume"}[feed]


def _reading(stream: tuple, k: int, start: datetime, value: float) -> dict:
    feed, site, device, lane, period = stream
    observed = (start + timedelta(seconds=period * k)).astimezone(CST)
    values: dict[str, float | None]
    if feed == "air":
        values = {
            "pm25": value,
            "pm10": value * 1.6,
            "so2": 7.0,
            "no2": 24.0,
            "co": 0.7,
            "o3": 61.0,
        }
    elif feed == "waterlogging":
        values = {"depth_cm": value}
    else:
        values = {"volume": value, "speed_kmh": 42.0, "occupancy_pct": 12.5}
    doc = {
        "schema": f"{feed}/v1",
        "site_id": site,
        "device_id": device,
        "seq": k,
        "observed_at": observed.isoformat(),
        "period_s": period,
        "values": values,
        "flags": [],
    }
    if lane is not None:
        doc["lane"] = lane
        doc["direction"] = "inbound"
    return doc


def _row_id(stream: tuple, k: int, start: datetime, value: float) -> tuple:
    feed, site, device, lane, period = stream
    return (feed, site, device, lane, start + timedelta(seconds=period * k), float(value))


def make_plan(n_readings: int, *, seed: int = 7, faults: bool = True) -> Plan:
    """About ``n_readings`` valid readings (singles and batches) over the streams, plus faults:
    ~3 % exact re-deliveries, ~1 % revisions, ~1.5 % malformed messages."""
    rng = random.Random(seed)
    per_stream = n_readings // len(STREAMS) + 1
    # Start far enough back that the last reading is still in the past (streams are picked at
    # random, so one may get well over its share).
    start = (datetime.now(UTC) - timedelta(seconds=300 * 2 * per_stream + 3600)).replace(
        second=0, microsecond=0
    )
    counters = [0] * len(STREAMS)
    plan = Plan()
    sent: list[tuple[str, bytes, int]] = []  # (topic, payload, records) for re-delivery picks
    n = 0
    bad = 0
    while n < n_readings:
        s = rng.randrange(len(STREAMS))
        stream = STREAMS[s]
        feed, site = stream[0], stream[1]
        topic = f"city/{CITY}/{feed}/{site}"
        roll = rng.random() if faults else 1.0
        if roll < 0.03 and sent:
            # Exact re-delivery of an earlier message (a gateway resend): same bytes.
            t, p, recs = sent[rng.randrange(len(sent))]
            plan.messages.append((t, p))
            plan.duplicates += recs
            plan.records += recs
            continue
        if roll < 0.04 and sent:
            # Revision: an already-sent key with a corrected value (new content, same key).
            k = rng.randrange(counters[s]) if counters[s] else None
            if k is not None:
                v = 1000.0 + plan.revisions  # distinct from every other value of this key
                doc = _reading(stream, k, start, v)
                plan.messages.append((topic, json.dumps(doc).encode()))
                plan.expected_rows[_row_id(stream, k, start, v)] += 1
                plan.revisions += 1
                plan.records += 1
                continue
        if roll < 0.055:
            kind = MALFORMED[bad % len(MALFORMED)]
            bad += 1
            k = counters[s]
            doc = _reading(stream, k, start, 1.0)
            doc["seq"] = 10_000_000 + bad  # every malformed message distinct
            reason = kind
            if kind == "not_json":
                payload = b'{"schema": "air/v1", oops ' + str(bad).encode()
            elif kind == "unknown_site":
                doc["site_id"] = "WS-NOPE-99"
                topic = f"city/{CITY}/{feed}/WS-NOPE-99"
                payload = json.dumps(doc).encode()
            elif kind == "naive_timestamp":
                doc["observed_at"] = doc["observed_at"][:19]
                payload = json.dumps(doc).encode()
            elif kind == "bad_number":
                doc["values"][_value(feed)] = "high"
                payload = json.dumps(doc).encode()
            elif kind == "bad_topic":
                topic = f"city/{CITY}/{feed}/"
                payload = json.dumps(doc).encode()
            elif kind == "unknown_feed":
                topic = f"city/{CITY}/noise/{site}"
                payload = json.dumps(doc).encode()
            else:  # a batch with two good readings and one missing a field
                good = []
                for _ in range(2):
                    k = counters[s]
                    counters[s] += 1
                    v = round(rng.uniform(1, 90), 1)
                    good.append(_reading(stream, k, start, v))
                    plan.expected_rows[_row_id(stream, k, start, v)] += 1
                    n += 1
                broken = dict(doc)
                del broken["period_s"]
                payload = json.dumps([good[0], broken, good[1]]).encode()
                reason = "missing_field"
                plan.records += 2
                sent.append((topic, payload, 3))
            plan.messages.append((topic, payload))
            plan.expected_quarantine[reason] += 1
            plan.records += 1
            continue
        if rng.random() < 0.1:
            batch = []
            for _ in range(rng.randint(2, 6)):
                k = counters[s]
                counters[s] += 1
                v = round(rng.uniform(1, 90), 1)
                batch.append(_reading(stream, k, start, v))
                plan.expected_rows[_row_id(stream, k, start, v)] += 1
            payload = json.dumps(batch).encode()
            recs = len(batch)
        else:
            k = counters[s]
            counters[s] += 1
            v = round(rng.uniform(1, 90), 1)
            payload = json.dumps(_reading(stream, k, start, v)).encode()
            plan.expected_rows[_row_id(stream, k, start, v)] += 1
            recs = 1
        plan.messages.append((topic, payload))
        sent.append((topic, payload, recs))
        plan.records += recs
        n += recs
    return plan
