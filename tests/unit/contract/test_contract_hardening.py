"""Issue 7 (hardening), the contract's part: each probe finding that a single message could
exploit, kept fixed. The corpus (cases.toml) carries one case per new reason code as well."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from test_contract_parse import reading  # the same valid air reading as the parser tests

from common.catalogue import Catalogue
from common.settings import REPO_ROOT
from ingestion.contract import ContractParser, parse_timestamp

RECEIVED = datetime(2026, 11, 28, 16, 30, tzinfo=UTC)
TOPIC = "city/wushan/air/WS-AIR-01"
SCHEMA_DIR = REPO_ROOT / "docs" / "schemas"


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan")


def outcome(parser: ContractParser, payload: bytes | dict | list, topic: str = TOPIC) -> list[str]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    pm = parser.parse(topic, raw, RECEIVED)
    return ["accept"] * len(pm.readings) + [r.reason for r in pm.rejections]


# ---------------------------------------------------------------- finding 1: oldest observed_at


@pytest.mark.parametrize(
    "observed_at",
    ["0001-01-01T00:00:00Z", "0001-01-01T01:59:00+00:00", "1600-01-01T00:00:00Z",
     "1970-01-01T00:00:00Z", "2025-12-31T23:59:59+08:00"],
)  # fmt: skip
def test_readings_before_the_sites_valid_from_are_too_old(
    parser: ContractParser, observed_at: str
) -> None:
    assert outcome(parser, reading(observed_at=observed_at)) == ["too_old"]


def test_valid_from_midnight_itself_is_accepted(parser: ContractParser) -> None:
    # WS-AIR-01 is valid from 2026-01-01 (reference/sites/wushan/air_stations.csv).
    assert outcome(parser, reading(observed_at="2026-01-01T00:00:00+08:00")) == ["accept"]


def test_an_explicit_oldest_date_admits_an_archive(catalogue: Catalogue) -> None:
    archive = ContractParser(catalogue, city="wushan", oldest_observed_at=date(2024, 1, 1))
    assert outcome(archive, reading(observed_at="2024-06-01T12:00:00+08:00")) == ["accept"]
    assert outcome(archive, reading(observed_at="2023-12-31T23:00:00+08:00")) == ["too_old"]


# ---------------------------------------------------------------- finding 3: period_s


@pytest.mark.parametrize("period_s", [3599, 3600, 86400, 59, 120])
def test_period_other_than_the_catalogue_period_is_rejected(
    parser: ContractParser, period_s: int
) -> None:
    assert outcome(parser, reading(period_s=period_s)) == ["period_mismatch"]


def test_each_feed_accepts_its_catalogue_period(
    parser: ContractParser, catalogue: Catalogue
) -> None:
    water = catalogue.sites["WS-WAT-01"]
    doc = {
        "schema": "water/v1", "site_id": "WS-WAT-01", "device_id": water.device_ids[0], "seq": 1,
        "observed_at": "2026-11-28T12:00:00+08:00", "period_s": water.period_s,
        "values": {"ph": 7.1},
    }  # fmt: skip
    assert outcome(parser, doc, "city/wushan/water/WS-WAT-01") == ["accept"]
    assert outcome(parser, {**doc, "period_s": 3600}, "city/wushan/water/WS-WAT-01") == [
        "period_mismatch"
    ]


# ---------------------------------------------------------------- finding 4: empty values


def test_empty_values_object_is_no_values(parser: ContractParser) -> None:
    assert outcome(parser, reading(values={})) == ["no_values"]
    # a failed channel still reports: null values are a reading, not nothing
    assert outcome(parser, reading(values={"pm25": None})) == ["accept"]


# ---------------------------------------------------------------- finding 5: dates per message


def test_batch_over_too_many_local_dates_is_one_quarantined_record(parser: ContractParser) -> None:
    base = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    batch = [
        reading(seq=i, observed_at=(base - timedelta(days=i)).isoformat()) for i in range(1000)
    ]
    assert outcome(parser, batch) == ["too_many_dates"]
    month = [reading(seq=i, observed_at=(base - timedelta(days=i)).isoformat()) for i in range(31)]
    assert outcome(parser, month) == ["accept"] * 31


def test_a_long_backlog_within_few_dates_passes(parser: ContractParser) -> None:
    base = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    batch = [
        reading(seq=i, observed_at=(base - timedelta(minutes=i)).isoformat()) for i in range(1000)
    ]
    assert outcome(parser, batch) == ["accept"] * 1000


# ---------------------------------------------------------------- finding 6: duplicate keys


@pytest.mark.parametrize(
    "text",
    [
        '"flags": ["maintenance"], "flags": []',
        '"site_id": "WS-AIR-01", "site_id": "WS-AIR-01"',
        '"values": {"pm25": 35.0, "pm25": 12.0}',
        '"units": {"pm25": "ug/m3", "pm25": "mg/m3"}',
    ],
)
def test_a_key_named_twice_is_rejected(parser: ContractParser, text: str) -> None:
    base = (
        '{"schema": "air/v1", "device_id": "AQM-0101", "seq": 7,'
        ' "observed_at": "2026-11-28T23:59:00+08:00", "period_s": 60'
    )
    fill = {
        "flags": ', "site_id": "WS-AIR-01", "values": {"pm25": 1.0}',
        "site_id": ', "values": {"pm25": 1.0}',
        "values": ', "site_id": "WS-AIR-01"',
        "units": ', "site_id": "WS-AIR-01", "values": {"pm25": 1.0}',
    }[re.match(r'"(\w+)"', text).group(1)]  # type: ignore[union-attr]
    doc = f"{base}, {text}{fill}}}".encode()
    assert outcome(parser, doc) == ["duplicate_key"]
    # inside a batch, only that reading is rejected
    good = json.dumps(reading(seq=8)).encode()
    assert sorted(outcome(parser, b"[" + doc + b"," + good + b"]")) == ["accept", "duplicate_key"]


# ---------------------------------------------------------------- finding 7: one grammar


ACCEPTED = [
    "2026-11-28T13:00:00+08:00",
    "2026-11-28T05:00:00Z",
    "2026-11-28T05:00:00z",
    "2026-11-28t05:00:00Z",
    "2026-11-28T05:00:00.5Z",
    "2026-11-28T05:00:00.123456Z",
    "2026-11-28T05:00:00.123456000Z",
    "2026-11-28T05:00:00-00:00",
    "2026-11-28T05:00:00+14:00",
    "2026-11-27T16:00:00-12:00",
]
REJECTED = [
    "2026-11-28 13:00:00+08:00",  # space separator
    "20261128T130000+0800",  # basic format
    "2026-11-28T13:00:00+0800",  # offset without colon
    "2026-W48-6T13:00:00+08:00",  # week date
    "2026-332T13:00:00+08:00",  # ordinal date
    "2026-11-28T13+08:00",  # hour only
    "2026-11-28T13:00+08:00",  # no seconds
    "2026-11-28T13:00:00+08:00:30",  # seconds in the offset
    "2026-11-28T13:00:00.1234567Z",  # non-zero digits past microseconds
    "2026-02-30T13:00:00Z",  # no such day
    "2026-11-28T24:00:00Z",
    "2026-11-28T13:00:00+24:00",
    "２０２６-11-28T13:00:00Z",  # full-width digits
    "2026-11-28T13:00:00Z\n",
    "2026-11-28T13:00:00,5Z",  # comma decimal
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_rfc3339_forms_are_accepted(parser: ContractParser, text: str) -> None:
    assert parse_timestamp(text) is not None
    assert outcome(parser, reading(observed_at=text)) == ["accept"]


@pytest.mark.parametrize("text", REJECTED)
def test_other_forms_are_bad_timestamps(parser: ContractParser, text: str) -> None:
    assert outcome(parser, reading(observed_at=text)) == ["bad_timestamp"]


def test_the_json_schemas_agree_with_the_parser_on_every_case() -> None:
    for name in ("air", "water", "waterlogging", "traffic"):
        pattern = json.loads((SCHEMA_DIR / f"{name}.v1.json").read_text())["properties"][
            "observed_at"
        ]["pattern"]
        for text in ACCEPTED:
            assert re.search(pattern, text), (name, text)
        for text in REJECTED[:9]:  # what a pattern can see: the calendar needs format checks
            assert not re.search(pattern, text), (name, text)


def test_sub_microsecond_readings_are_not_merged(parser: ContractParser) -> None:
    a = reading(observed_at="2026-11-28T05:00:00.1234561Z")
    b = reading(observed_at="2026-11-28T05:00:00.1234562Z")
    assert outcome(parser, [a, b]) == ["bad_timestamp", "bad_timestamp"]
    zeros = parser.parse(
        TOPIC, json.dumps(reading(observed_at="2026-11-28T05:00:00.100000000Z")).encode(), RECEIVED
    )
    assert zeros.readings[0].row["observed_at"] == datetime(
        2026, 11, 28, 5, 0, 0, 100000, tzinfo=UTC
    )


# ---------------------------------------------------------------- finding 8: accounting


def test_negative_zero_hashes_like_zero(parser: ContractParser) -> None:
    zero = parser.parse(TOPIC, json.dumps(reading(values={"pm25": 0.0})).encode(), RECEIVED)
    neg = parser.parse(TOPIC, b'{"schema":"air/v1","site_id":"WS-AIR-01","device_id":"AQM-0101",'
                       b'"seq":7,"observed_at":"2026-11-28T23:59:00+08:00","period_s":60,'
                       b'"values":{"pm25":-0.0}}', RECEIVED)  # fmt: skip
    assert neg.readings[0].content_hash == zero.readings[0].content_hash
    assert str(neg.readings[0].row["pm25_ugm3"]) == "0.0"


def test_an_integer_of_5000_digits_is_a_bad_number_not_bad_json(parser: ContractParser) -> None:
    big = "9" * 5000
    doc = json.dumps(reading()).replace('"pm25": 35.0', f'"pm25": {big}').encode()
    assert outcome(parser, doc) == ["bad_number"]
    seq = json.dumps(reading()).replace('"seq": 7', f'"seq": {big}').encode()
    assert outcome(parser, seq) == ["wrong_type"]
