"""Unit and property tests of ingestion.contract: units, timestamps, content hash, never-raise."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.catalogue import Catalogue
from common.settings import Settings
from common.units import ALTERNATIVES, CANONICAL, UNITS, from_canonical, to_canonical
from ingestion.contract import REASONS, ContractParser, max_depth
from ingestion.schema import QUARANTINE_SCHEMA, landing_schema

RECEIVED = datetime(2026, 11, 28, 16, 30, tzinfo=UTC)  # 00:30 on 29 Nov, China time
TOPIC = "city/wushan/air/WS-AIR-01"


def reading(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "schema": "air/v1",
        "site_id": "WS-AIR-01",
        "device_id": "AQM-0101",
        "seq": 7,
        "observed_at": "2026-11-28T23:59:00+08:00",
        "period_s": 60,
        "values": {"pm25": 35.0, "pm10": 58.0, "co": 0.7},
    }
    r.update(over)
    return r


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan")


def one(parser: ContractParser, obj: Any, topic: str = TOPIC, received: datetime = RECEIVED):
    pm = parser.parse(topic, enc(obj), received)
    assert not pm.rejections, [r.row["detail"] for r in pm.rejections]
    (r,) = pm.readings
    return r


def reason(parser: ContractParser, obj: Any, topic: str = TOPIC) -> str:
    pm = parser.parse(topic, enc(obj), RECEIVED)
    assert pm.readings == [] and len(pm.rejections) == 1
    return pm.rejections[0].reason


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("feed", "field", "value", "unit", "expected"),
    [
        ("air", "pm25", 0.035, "mg/m3", 35.0),
        ("air", "o3", 0.161, "mg/m3", 161.0),
        ("air", "co", 700.0, "ug/m3", 0.7),
        ("air", "co", 0.7, "mg/m3", 0.7),
        ("water", "conductivity", 0.31, "mS/cm", 310.0),
        ("waterlogging", "depth_cm", 0.35, "m", 35.0),
        ("waterlogging", "depth_cm", 35.0, "mm", 3.5),
        ("traffic", "speed_kmh", 10.0, "m/s", 36.0),
        ("traffic", "occupancy_pct", 0.12, "fraction", 12.0),
    ],
)
def test_to_canonical(feed: str, field: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(feed, field, value, unit) == expected


def test_units_table_covers_every_landing_column_and_round_trips() -> None:
    from ingestion.schema import VALUE_COLUMNS

    for feed, cols in VALUE_COLUMNS.items():
        assert set(UNITS[feed]) == set(cols), feed
        for field in cols:
            assert UNITS[feed][field][CANONICAL[feed][field]] == 1.0
    for feed, fields in ALTERNATIVES.items():
        for field, units in fields.items():
            for unit, factor in units.items():
                assert UNITS[feed][field][unit] == factor
                assert (
                    to_canonical(feed, field, from_canonical(feed, field, 42.5, unit), unit) == 42.5
                )


def test_parser_converts_units_and_rejects_unknown(parser: ContractParser) -> None:
    r = one(
        parser, reading(units={"pm25": "mg/m3", "co": "ug/m3"}, values={"pm25": 0.035, "co": 700})
    )
    assert r.row["pm25_ugm3"] == 35.0
    assert r.row["co_mgm3"] == 0.7
    assert reason(parser, reading(units={"pm25": "ppb"})) == "unknown_unit"
    # A unit for a field absent from values is harmless.
    assert one(parser, reading(units={"so2": "mg/m3"})).row["so2_ugm3"] is None


def test_unit_variant_hashes_like_the_canonical_reading(parser: ContractParser) -> None:
    canonical = one(parser, reading(values={"pm25": 35.0}))
    variant = one(parser, reading(values={"pm25": 0.035}, units={"pm25": "mg/m3"}))
    assert variant.content_hash == canonical.content_hash


# ---------------------------------------------------------------- timestamps


def test_observed_at_is_converted_to_utc(parser: ContractParser) -> None:
    r = one(parser, reading(observed_at="2026-11-28T13:00:00+08:00"))
    assert r.row["observed_at"] == datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
    assert r.row["observed_at"].utcoffset() == timedelta(0)
    assert r.key[-1] == "2026-11-28T05:00:00+00:00"
    # The same instant written with another offset is the same reading.
    same = one(parser, reading(observed_at="2026-11-28T05:00:00Z"))
    assert same.key == r.key and same.content_hash == r.content_hash
    other = one(parser, reading(observed_at="2026-11-27T21:00:00-08:00"))
    assert other.key == r.key


@pytest.mark.parametrize(
    ("observed_at", "local_day"),
    [
        ("2026-11-28T23:59:59+08:00", date(2026, 11, 28)),
        ("2026-11-29T00:00:00+08:00", date(2026, 11, 29)),
        ("2026-11-28T15:59:59Z", date(2026, 11, 28)),
        ("2026-11-28T16:00:00Z", date(2026, 11, 29)),
        ("2026-11-28T16:00:00+00:00", date(2026, 11, 29)),
    ],
)
def test_local_date_cuts_at_china_midnight(
    parser: ContractParser, observed_at: str, local_day: date
) -> None:
    r = one(parser, reading(observed_at=observed_at))
    assert r.local_date == local_day
    assert r.row["local_date"] == local_day


def test_future_tolerance_boundary(parser: ContractParser) -> None:
    at_limit = (RECEIVED + timedelta(seconds=300)).isoformat()
    past_limit = (RECEIVED + timedelta(seconds=301)).isoformat()
    one(parser, reading(observed_at=at_limit))
    assert reason(parser, reading(observed_at=past_limit)) == "future_timestamp"


def test_naive_received_at_is_taken_as_utc(parser: ContractParser) -> None:
    r = one(parser, reading(), received=RECEIVED.replace(tzinfo=None))
    assert r.row["received_at"] == RECEIVED


def test_quarantine_received_date_is_china_day(parser: ContractParser) -> None:
    pm = parser.parse(TOPIC, b"nope", RECEIVED)
    assert pm.rejections[0].row["received_date"] == date(2026, 11, 29)


# ---------------------------------------------------------------- content hash and key


def test_exact_redelivery_same_hash_and_spelling_does_not_matter(parser: ContractParser) -> None:
    a = one(parser, reading())
    b = one(parser, reading(), received=RECEIVED + timedelta(hours=3))
    assert a.content_hash == b.content_hash
    assert a.row["content_hash"] == a.content_hash
    # Key order, whitespace, 35 vs 35.0 and an explicit empty flags list: same canonical reading.
    text = (
        '{ "values": {"co": 0.7, "pm10": 58, "pm25": 35}, "period_s": 60, "seq": 7, "flags": [],'
        ' "observed_at": "2026-11-28T23:59:00+08:00", "device_id": "AQM-0101",'
        ' "site_id": "WS-AIR-01", "schema": "air/v1" }'
    )
    (c,) = parser.parse(TOPIC, text.encode(), RECEIVED).readings
    assert c.content_hash == a.content_hash


@pytest.mark.parametrize(
    "change",
    [
        {"values": {"pm25": 35.5, "pm10": 58.0, "co": 0.7}},
        {"values": {"pm25": 35.0, "pm10": 58.0, "co": None}},
        {"values": {"pm25": 35.0, "pm10": 58.0}},
        {"seq": 8},
        {"values": {"pm25": 35.0, "pm10": 58.0, "co": 0.7, "o3": 0.0}},
        {"flags": ["maintenance"]},
        {"device_id": "AQM-0102"},
        {"observed_at": "2026-11-28T23:58:00+08:00"},
    ],
)
def test_any_change_changes_the_hash(parser: ContractParser, change: dict[str, Any]) -> None:
    assert one(parser, reading(**change)).content_hash != one(parser, reading()).content_hash


def test_flags_sorted_and_deduplicated(parser: ContractParser) -> None:
    r = one(parser, reading(flags=["power_fail", "calibration", "power_fail"]))
    assert r.row["flags"] == "calibration|power_fail"
    assert one(parser, reading()).row["flags"] == ""


def test_traffic_key_carries_lane(parser: ContractParser) -> None:
    obj = reading(
        schema="traffic/v1",
        site_id="WS-TRF-01",
        device_id="TRF-0101",
        period_s=300,
        lane=2,
        direction="outbound",
        values={"volume": 40, "speed_kmh": 30.0, "occupancy_pct": 10.0},
    )
    r = one(parser, obj, topic="city/wushan/traffic/WS-TRF-01")
    assert r.key == ("traffic", "WS-TRF-01", "TRF-0101", 2, "2026-11-28T15:59:00+00:00")
    assert r.row["lane"] == 2 and r.row["direction"] == "outbound"
    assert r.row["volume_veh"] == 40.0


def test_from_settings(settings: Settings) -> None:
    p = ContractParser.from_settings(settings)
    assert p.city == settings.city
    assert p.max_payload_bytes == settings.max_payload_bytes
    pm = p.parse(TOPIC, enc(reading()), RECEIVED)
    assert pm.records == 1 and len(pm.readings) == 1


def test_max_depth_ignores_brackets_in_strings() -> None:
    assert max_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert max_depth(b'[[1], {"a": [2]}]') == 3
    assert max_depth(b'"\\"[[[["') == 0


def test_device_id_with_many_brackets_is_not_too_deep(parser: ContractParser) -> None:
    assert one(parser, reading(device_id="{{{{{{{{{{[[[[[[[[[[")).row["device_id"]


# ---------------------------------------------------------------- never raise


def _check(pm: Any, parser: ContractParser) -> None:
    assert pm.records >= 1
    assert all(r.reason in REASONS and r.reason != "internal_error" for r in pm.rejections), [
        (r.reason, r.row["detail"]) for r in pm.rejections
    ]
    if pm.rejections:
        pa.Table.from_pylist([r.row for r in pm.rejections], schema=QUARANTINE_SCHEMA)
    for r in pm.readings:
        pa.Table.from_pylist([r.row], schema=landing_schema(r.feed))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
fields = st.sampled_from(
    [
        "schema",
        "site_id",
        "device_id",
        "seq",
        "observed_at",
        "period_s",
        "values",
        "units",
        "flags",
        "lane",
        "direction",
        "extra",
    ]
)
topics = st.sampled_from(
    [
        TOPIC,
        "city/wushan/traffic/WS-TRF-01",
        "city/wushan/water/WS-WAT-01",
        "city/wushan/air/",
        "city/x/air/WS-AIR-01",
        "",
        "////",
    ]
) | st.text(max_size=40)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(topic=topics, payload=st.binary(max_size=300))
def test_fuzz_bytes_never_raise(parser: ContractParser, topic: str, payload: bytes) -> None:
    _check(parser.parse(topic, payload, RECEIVED), parser)


@FUZZ
@given(topic=topics, doc=json_values)
def test_fuzz_json_never_raise(parser: ContractParser, topic: str, doc: Any) -> None:
    _check(parser.parse(topic, json.dumps(doc).encode(), RECEIVED), parser)


@FUZZ
@given(
    field=fields,
    value=json_values,
    batch=st.booleans(),
    values=st.dictionaries(
        st.sampled_from(["pm25", "pm10", "co", "o3", "x"]), json_values, max_size=4
    ),
)
def test_fuzz_mutated_reading_never_raise(
    parser: ContractParser, field: str, value: Any, batch: bool, values: dict[str, Any]
) -> None:
    doc = reading(**{field: value})
    doc2 = reading(values=values)
    pm = parser.parse(TOPIC, json.dumps([doc, doc2] if batch else doc).encode(), RECEIVED)
    _check(pm, parser)
    assert pm.records == (2 if batch else 1)


def test_unwritable_text_never_reaches_arrow(parser: ContractParser) -> None:
    # A topic with a lone surrogate (a broken client library) still gives a writable row.
    pm = parser.parse("city/\udc80/air/WS-AIR-01", b"{}", RECEIVED)
    assert pm.rejections[0].reason == "wrong_city"
    _check(pm, parser)
