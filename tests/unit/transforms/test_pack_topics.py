"""Topics and payloads of the KPI pack publisher (transforms/pack_publisher.py): a segment from
data is an id or the row is left out; the payload is byte-stable and valid JSON."""

from __future__ import annotations

import json

import pytest

from transforms.pack_publisher import PAYLOAD_KEYS, InvalidTopic, build_messages, encode, kpi_topic


def test_kpi_ids_with_dots_and_site_ids_make_topics() -> None:
    assert kpi_topic("wushan", "air.aqi", "county") == "city/wushan/kpi/air.aqi/county"
    assert kpi_topic("wushan", "air.pm25", "WS-AIR-02") == "city/wushan/kpi/air.pm25/WS-AIR-02"
    assert kpi_topic("wushan", "traffic.tpi", "old_town") == "city/wushan/kpi/traffic.tpi/old_town"


@pytest.mark.parametrize(
    "kpi_id, dimension",
    [
        ("air.aqi", "+"),
        ("air.aqi", "#"),
        ("air/aqi", "county"),
        ("air.aqi", "a/b"),
        ("air.aqi", ""),
        ("$SYS", "county"),
        ("air.aqi", "county\x00"),
        ("air.aqi", "县"),
        ("air.aqi", "x" * 81),
        ("air.aqi", None),
    ],
)
def test_a_segment_that_is_not_an_id_is_refused(kpi_id: object, dimension: object) -> None:
    with pytest.raises(InvalidTopic):
        kpi_topic("wushan", kpi_id, dimension)  # type: ignore[arg-type]


def test_invalid_rows_are_left_out_and_named() -> None:
    items = [
        {"kpi_id": "air.aqi", "dimension": "county", "value": 42.0, "local_date": "2026-06-10"},
        {"kpi_id": "air.aqi", "dimension": "a+b", "value": 1.0, "local_date": "2026-06-10"},
    ]
    messages, invalid = build_messages("wushan", items)
    assert list(messages) == ["city/wushan/kpi/air.aqi/county"]
    assert len(invalid) == 1 and "'a+b'" in invalid[0]


def test_the_payload_is_stable_json_with_every_key() -> None:
    item = {"kpi_id": "air.aqi", "dimension": "county", "value": float("nan"), "unit": "AQI",
            "details": {"n": 1}, "local_date": "2026-06-10", "status": "final"}  # fmt: skip
    a = encode(item)
    assert a == encode(dict(reversed(list(item.items()))))
    doc = json.loads(a)
    assert list(doc) == list(PAYLOAD_KEYS)
    assert doc["value"] is None and doc["details"] == {"n": 1} and doc["target"] is None
