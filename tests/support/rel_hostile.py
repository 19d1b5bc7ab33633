"""Hostile input for the reliability suite: strings (MQTT ingest and the pages check) and the
hostile MQTT cases of tests/data/hostile/cases.toml as messages.

Each string is an injection payload for one sink: SQL (DuckDB/Postgres), HTML, an inline
script, an attribute, a URL, or a template engine. Payloads that execute set
``window.__pwned`` so a browser check can assert it never became truthy.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from support import TEST_DATA

HOSTILE_STRINGS: list[str] = [
    "<img src=x onerror=window.__pwned=1>",
    "</script><script>window.__pwned=1</script>",
    "\"'><svg onload=window.__pwned=1>",
    "javascript:window.__pwned=1",
    "'; DROP TABLE core.readings; --",
    "{{7*7}}",
    "${7*7}",
    "<script>window.__pwned=1</script>",
    "' OR '1'='1",
    "1); DELETE FROM landing.readings; --",
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    '" onmouseover="window.__pwned=1" x="',
    '<a href="javascript:window.__pwned=1">x</a>',
    "<style>@import 'javascript:window.__pwned=1';</style>",
    "`;window.__pwned=1;`",
    "<details open ontoggle=window.__pwned=1>",
]


# ---------------------------------------------------------------------- the hostile case file
# tests/data/hostile/cases.toml: each case expands to one or more MQTT messages (an injection
# case sends one per string above). Read by tests/unit/contract/test_hostile_parse.py (parser
# alone) and tests/reliability/test_rel_hostile_mqtt.py (Mosquitto + `citypipe ingest`).

HOSTILE = TEST_DATA / "hostile"
CASES: list[dict[str, Any]] = tomllib.loads((HOSTILE / "cases.toml").read_text("utf-8"))["case"]
LIMIT = 262144
DEFAULT_TOPIC = "city/wushan/air/WS-AIR-01"
# Outcomes that are not a quarantine reason: the reading lands; a re-delivery is counted as a
# duplicate; the broker disconnects the publisher (the message never reaches the ingest).
ACCEPT, BROKER_REFUSES = "accept", "broker_refuses"

READING: dict[str, Any] = {
    "schema": "air/v1",
    "site_id": "WS-AIR-01",
    "device_id": "AQM-0101",
    "seq": 1,
    "observed_at": "2026-12-01T10:00:00+08:00",
    "period_s": 60,
    "values": {"pm25": 35.0},
}
TRAFFIC: dict[str, Any] = {
    "schema": "traffic/v1",
    "site_id": "WS-TRF-01",
    "device_id": "TRF-0101",
    "seq": 1,
    "observed_at": "2026-12-01T10:00:00+08:00",
    "period_s": 300,
    "lane": 1,
    "direction": "inbound",
    "values": {"volume": 48},
}


@dataclass
class Message:
    """One MQTT publish of a case, and what must come of it."""

    case: str
    group: str
    topic: str
    payload: bytes
    expect: str  # ACCEPT, BROKER_REFUSES or a quarantine reason code
    row: dict[str, Any] | None = None  # landing values that must be stored (ACCEPT)
    detail: str = ""  # text the quarantine detail must contain
    qos: int = 1
    retain: bool = False
    copies: int = 1  # the same publish this many times: one lands, the rest are duplicates
    mqtt5: dict[str, Any] = field(default_factory=dict)

    @property
    def feed(self) -> str:
        return self.topic.split("/")[2] if self.topic.count("/") == 3 else "unknown"


def _dump(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _generate(kind: str, copies: int) -> bytes:
    # Large payloads are built at test time: nothing near 1 MiB sits in git.
    if kind == "string_1mib_in_flags":
        return _dump({**READING, "flags": ["x" * (1024 * 1024 + 1)]})
    if kind == "exactly_limit_whitespace":  # exactly the limit, padded with JSON whitespace
        body = _dump({**READING, "observed_at": "2026-12-01T10:31:00+08:00"})
        return body + b" \t\r\n" * ((LIMIT - len(body)) // 4) + b" " * ((LIMIT - len(body)) % 4)
    if kind == "int_4300_digits":  # the largest integer Python converts: still no double
        return _dump(READING).replace(b"35.0", b"9" * 4300)
    if kind == "long_fraction_5000_digits":  # 35.000...0001 with 5000 digits: a double is 35.0
        return _dump({**READING, "observed_at": "2026-12-01T10:32:00+08:00"}).replace(
            b"35.0", b"35." + b"0" * 5000 + b"1"
        )
    if kind == "brackets_in_strings":  # 1000 brackets inside a string are no nesting
        return _dump(
            {**READING, "device_id": "[{" * 32, "observed_at": "2026-12-01T10:33:00+08:00"}
        )
    if kind == "deep_nested_in_unknown_field":
        return _dump(READING)[:-1] + b', "x": ' + b"[" * 40 + b"]" * 40 + b"}"
    if kind == "keys_10000_unknown":
        return _dump({**READING, "values": {f"k{i}": 1.0 for i in range(10_000)}})
    if kind == "batch_of_identical_readings":
        return _dump([{**READING, "observed_at": "2026-12-01T10:34:00+08:00"}] * copies)
    raise ValueError(kind)


def _injected(field_name: str, s: str, i: int) -> tuple[str, bytes, str, dict[str, Any] | None]:
    """(topic, payload, expected outcome, landing row) for hostile string ``s`` in one field."""
    minute = f"2026-12-01T11:{i:02d}:00+08:00"
    doc: dict[str, Any] = dict(READING)
    topic = DEFAULT_TOPIC
    if field_name == "device_id":  # free text: stored exactly, as data
        doc = {**READING, "device_id": s, "observed_at": minute}
        row = {
            "site_id": "WS-AIR-01",
            "device_id": s,
            "seq": 1,
            "observed_at": f"2026-12-01T03:{i:02d}:00+00:00",
            "pm25_ugm3": 35.0,
        }
        return topic, _dump(doc), ACCEPT, row
    expect = {
        "site_id": "site_mismatch",
        "topic_site": "unknown_site",
        "schema": "unknown_schema",
        "flags": "bad_flag",
        "units": "unknown_unit",
        "units_key": "unknown_field",
        "values_key": "unknown_field",
        "top_level_key": "unknown_field",
        "observed_at": "bad_timestamp",
        "direction": "bad_direction",
        "lane": "wrong_type",
        "seq": "wrong_type",
        "value": "bad_number",
        "topic_feed": "unknown_feed",
        "topic_city": "wrong_city",
    }[field_name]
    if field_name == "topic_site":
        topic = f"city/wushan/air/{s}"
        doc["site_id"] = s
    elif field_name == "topic_feed":
        topic = f"city/wushan/{s}/WS-AIR-01"
    elif field_name == "topic_city":
        topic = f"city/{s}/air/WS-AIR-01"
    elif field_name == "flags":
        doc["flags"] = [s]
    elif field_name == "units":
        doc["units"] = {"pm25": s}
    elif field_name == "units_key":
        doc["units"] = {s: "ug/m3"}
    elif field_name == "values_key":
        doc["values"] = {"pm25": 35.0, s: 1.0}
    elif field_name == "top_level_key":
        doc[s] = 1
    elif field_name == "value":
        doc["values"] = {"pm25": s}
    elif field_name in ("direction", "lane"):
        topic = "city/wushan/traffic/WS-TRF-01"
        doc = {**TRAFFIC, field_name: s}
    else:
        doc[field_name] = s
    return topic, _dump(doc), expect, None


def topic_safe(s: str) -> bool:
    """A string that can be one MQTT topic level a client may publish to."""
    return not any(c in s for c in "/+#\x00")


def messages(*, flood: int = 3000) -> list[Message]:
    """Every case of cases.toml as the messages to publish, in file order."""
    out: list[Message] = []
    for c in CASES:
        common = {
            "case": c["name"],
            "group": c["group"],
            "detail": c.get("detail", ""),
            "qos": c.get("qos", 1),
            "retain": c.get("retain", False),
            "mqtt5": c.get("mqtt5", {}),
        }
        if "inject" in c:
            fname = c["inject"]
            for i, s in enumerate(HOSTILE_STRINGS):
                if fname.startswith("topic_") and not topic_safe(s):
                    continue  # a '/' adds a level, '+'/'#' are refused by the client library
                topic, payload, expect, row = _injected(fname, s, i)
                out.append(Message(topic=topic, payload=payload, expect=expect, row=row, **common))
            continue
        copies = flood if c.get("copies") == "flood" else int(c.get("copies", 1))
        if "text" in c:
            payload = c["text"].encode(c.get("encoding", "utf-8"))
        elif "set" in c:
            payload = _dump({**READING, **c["set"]})
        elif "hex" in c:
            payload = bytes.fromhex(c["hex"])
        elif "generate" in c:
            payload = _generate(c["generate"], copies)
            if c["generate"] == "batch_of_identical_readings":
                copies = 1  # one message holding the copies
        else:
            payload = _dump(READING)
        payload = bytes.fromhex(c.get("prefix_hex", "")) + payload
        topic = c.get("topic", DEFAULT_TOPIC)
        if "long_topic" in c:  # the site level padded to this many characters
            topic += "X" * (c["long_topic"] - len(topic))
        out.append(
            Message(
                topic=topic,
                payload=payload,
                expect=c["expect"],
                row=c.get("row"),
                copies=copies,
                **common,
            )
        )
    return out
