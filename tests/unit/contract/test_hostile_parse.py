"""Every hostile case (tests/data/hostile/cases.toml) through the contract parser alone.

The same cases go through a real Mosquitto and `citypipe ingest` in
tests/reliability/test_rel_hostile_mqtt.py; here each message's outcome is pinned quickly and
precisely: the reason code, a printable detail that shows what was wrong, or the exact row.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from support.rel_hostile import ACCEPT, BROKER_REFUSES, CASES, HOSTILE_STRINGS, Message, messages

from common.catalogue import Catalogue
from common.contract import REASONS
from ingestion.contract import ContractParser

RECEIVED = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
MESSAGES = messages(flood=3)


def _id(m: Message) -> str:
    return m.case


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan")


def test_the_file_holds_at_least_50_kinds_with_known_outcomes() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)) >= 50
    for c in CASES:
        assert c["expect"] in REASONS or c["expect"] in (ACCEPT, BROKER_REFUSES), c["name"]
        assert (c["expect"] == ACCEPT) == ("row" in c or c.get("inject") == "device_id"), c["name"]
    assert len(HOSTILE_STRINGS) >= 15


def test_no_two_messages_are_the_same_bytes_on_the_same_topic() -> None:
    # Else the second would be an exact re-delivery (a duplicate), not the case it claims to be.
    seen = Counter((m.topic, m.payload) for m in MESSAGES)
    assert [k[0] for k, n in seen.items() if n > 1] == []


def test_accepted_cases_have_distinct_natural_keys(parser: ContractParser) -> None:
    keys = Counter()
    for m in MESSAGES:
        if m.expect == ACCEPT:
            pm = parser.parse(m.topic, m.payload, RECEIVED)
            keys.update({r.key for r in pm.readings})
    assert [k for k, n in keys.items() if n > 1] == []


@pytest.mark.parametrize("m", [m for m in MESSAGES if m.expect != BROKER_REFUSES], ids=_id)
def test_case(parser: ContractParser, m: Message) -> None:
    pm = parser.parse(m.topic, m.payload, RECEIVED)
    if m.expect == ACCEPT:
        assert pm.rejections == [], [r.row["detail"] for r in pm.rejections]
        assert pm.readings, "nothing accepted"
        row = pm.readings[0].row
        for col, want in (m.row or {}).items():
            got = row[col].isoformat() if col == "observed_at" else row[col]
            assert got == want, col
        return
    assert pm.readings == []
    (rej,) = pm.rejections
    assert rej.reason == m.expect, rej.row["detail"]
    detail = rej.row["detail"]
    assert isinstance(detail, str) and detail and detail.isprintable(), detail
    assert m.detail in detail
    # A quarantine row must be writable: no lone surrogate may reach Arrow's UTF-8 columns.
    for col in ("topic", "detail"):
        str(rej.row[col]).encode("utf-8")


def _air(observed_at: str = "2026-12-01T10:00:00+08:00", **over: object) -> bytes:
    import json

    doc = {
        "schema": "air/v1",
        "site_id": "WS-AIR-01",
        "device_id": "AQM-0101",
        "seq": 1,
        "observed_at": observed_at,
        "period_s": 60,
        "values": {"pm25": 35.0},
        **over,
    }
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("offset", "ok"),
    [("+14:00", True), ("-12:00", True), ("+14:01", False), ("-12:01", False), ("+23:59", False)],
)
def test_utc_offsets_beyond_those_in_use_are_bad_timestamps(
    parser: ContractParser, offset: str, ok: bool
) -> None:
    pm = parser.parse("city/wushan/air/WS-AIR-01", _air(f"2026-12-01T05:00:00{offset}"), RECEIVED)
    assert bool(pm.readings) is ok
    if not ok:
        assert pm.rejections[0].reason == "bad_timestamp"
        assert "-12:00..+14:00" in pm.rejections[0].row["detail"]


@pytest.mark.parametrize(
    ("site", "shown"),
    [("WS-AIR-01\u200b", "\\u200b"), ("\ufeffWS-AIR-01", "\\ufeff"), ("WS-\u0410IR-01", "\\u0410")],
)
def test_a_reason_shows_invisible_and_look_alike_characters(
    parser: ContractParser, site: str, shown: str
) -> None:
    # Before: 'site_id "WS-AIR-01" differs from topic site 'WS-AIR-01'' with the difference
    # invisible; now the escape is in the text an operator reads.
    pm = parser.parse("city/wushan/air/WS-AIR-01", _air(site_id=site), RECEIVED)
    detail = pm.rejections[0].row["detail"]
    assert pm.rejections[0].reason == "site_mismatch"
    assert shown in detail and detail.isprintable()
