"""Hostile strings for the page tests (tests/reliability/test_rel_hostile_pages.py): SQL, HTML,
JS, template and spreadsheet-formula payloads, and the MQTT messages that carry one of them in
every string field a sensor controls (topic parts, site and device ids, schema, flags, units,
direction, unknown keys, timestamps, the raw payload), plus landing rows that put them where GX
reports unexpected values.

Every payload that could run sets ``window.__pwned``: a page test asserts it never is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CST = timezone(timedelta(hours=8))
CITY = "wushan"
AIR_SITE, AIR_DEVICE = "WS-AIR-01", "AQM-0101"
TRAFFIC_SITE, TRAFFIC_DEVICE = "WS-TRF-01", "TRF-0101"

HOSTILE_STRINGS: tuple[str, ...] = (
    "<img src=x onerror=window.__pwned=1>",
    "</script><script>window.__pwned=1</script>",
    "\"'><svg onload=window.__pwned=1>",
    "javascript:window.__pwned=1",
    "'; DROP TABLE core.readings; --",
    "{{7*7}}",
    "${7*7}",
    "<a href=javascript:window.__pwned=1>x</a>",
    '=HYPERLINK("http://127.0.0.1:9/x","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
)
# What a spreadsheet reads as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def marker(hostile: str) -> str:
    """A piece of ``hostile`` that survives being quoted as JSON in a quarantine reason's detail
    (``"`` becomes ``\\"``) and is still unmistakably the payload, to find it in page text."""
    return max(hostile.split('"'), key=len)


def topic_safe(text: str) -> bool:
    """Whether ``text`` can be one level of a PUBLISH topic that the service's subscription
    (city/{city}/+/+) matches: no wildcard, no NUL, no level separator."""
    return not any(c in text for c in "+#/\x00")


@dataclass
class HostileTraffic:
    """Messages with a hostile string in each field; which field each one carries it in."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # one per message
    landed_devices: set[str] = field(
        default_factory=set
    )  # readings that must land (and be flagged)

    def add(self, fld: str, topic: str, payload: bytes | dict[str, Any]) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.messages.append((topic, body))
        self.fields.append(fld)


def _air(device: str, seq: int, observed: datetime, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "air/v1",
        "site_id": AIR_SITE,
        "device_id": device,
        "seq": seq,
        "observed_at": observed.astimezone(CST).isoformat(),
        "period_s": 60,
        "values": {"pm25": 35.0, "pm10": 58.0, "so2": 7.0, "no2": 24.0, "co": 0.7, "o3": 61.0},
        "flags": [],
    }
    doc.update(extra)
    return doc


def hostile_traffic(now: datetime, strings: tuple[str, ...] = HOSTILE_STRINGS) -> HostileTraffic:
    """For each string: readings that land with it as device id (one plausible, one GX flags for
    an out-of-range value and the maintenance flag), and messages quarantined for it in the
    topic's site and feed, site_id, schema, flags, units, direction, an unknown top-level key, a
    values key, observed_at and as a raw (non-JSON) payload."""
    out = HostileTraffic()
    air_topic = f"city/{CITY}/air/{AIR_SITE}"
    for i, h in enumerate(strings):
        at = now - timedelta(minutes=30 + i)
        out.add("device_id", air_topic, _air(h, 1, at))
        bad = _air(h, 2, at - timedelta(seconds=30), flags=["maintenance"])
        bad["values"] = {**bad["values"], "pm25": 1500.0, "pm10": 1600.0}
        out.add("device_id (GX-flagged value)", air_topic, bad)
        out.landed_devices.add(h)

        site_topic = f"city/{CITY}/air/{h}" if topic_safe(h) else air_topic
        out.add("site_id (topic and payload)", site_topic, _air(AIR_DEVICE, 100 + i, at, site_id=h))
        if topic_safe(h):  # (the service subscribes to city/{city}/+/+: only these levels)
            out.add("topic feed", f"city/{CITY}/{h}/{AIR_SITE}", _air(AIR_DEVICE, 200 + i, at))
        out.add("schema", air_topic, _air(AIR_DEVICE, 400 + i, at, schema=h))
        out.add("flags", air_topic, _air(AIR_DEVICE, 500 + i, at, flags=[h]))
        out.add("units", air_topic, _air(AIR_DEVICE, 600 + i, at, units={"pm25": h}))
        out.add("unknown field", air_topic, _air(AIR_DEVICE, 700 + i, at, **{h: 1}))
        values = _air(AIR_DEVICE, 800 + i, at)
        values["values"] = {h: 1.0}
        out.add("values key", air_topic, values)
        out.add("observed_at", air_topic, _air(AIR_DEVICE, 900 + i, at, observed_at=h))
        wrong_seq = _air(AIR_DEVICE, 0, at)
        wrong_seq["seq"] = h
        out.add("seq", air_topic, wrong_seq)
        traffic = {
            "schema": "traffic/v1",
            "site_id": TRAFFIC_SITE,
            "device_id": TRAFFIC_DEVICE,
            "seq": 1000 + i,
            "observed_at": at.astimezone(CST).isoformat(),
            "period_s": 300,
            "lane": 1,
            "direction": h,
            "values": {"volume": 10.0, "speed_kmh": 40.0, "occupancy_pct": 5.0},
        }
        out.add("direction", f"city/{CITY}/traffic/{TRAFFIC_SITE}", traffic)
        out.add("raw payload (not JSON)", air_topic, h.encode())
    return out
