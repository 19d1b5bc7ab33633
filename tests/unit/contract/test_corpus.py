"""The malformed-message corpus (tests/data/corpus/cases.toml): every case gets its outcome."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from support.corpus import CASES, CORPUS, LIMIT, RECEIVED, _payload

from common.catalogue import Catalogue
from ingestion.contract import REASONS, ContractParser
from ingestion.schema import QUARANTINE_SCHEMA, landing_schema


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan", max_payload_bytes=LIMIT)


def test_corpus_is_big_and_names_are_unique() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    assert sum(c["expect"] != "accept" for c in CASES) >= 35


def test_corpus_covers_every_reason_but_internal_error() -> None:
    seen = {c["expect"] for c in CASES} | {r for c in CASES for r in c.get("reasons", [])}
    missing = set(REASONS) - seen - {"internal_error"}
    assert not missing, f"no corpus case for {sorted(missing)}"


def test_committed_payload_files_are_small() -> None:
    for path in CORPUS.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 1024 * 1024, path


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any], parser: ContractParser) -> None:
    payload = _payload(case)
    pm = parser.parse(case["topic"], payload, RECEIVED)
    got = [r.reason for r in pm.rejections]
    for r in pm.rejections:
        assert r.reason in REASONS
        assert r.row["reason"] == r.reason
        assert r.row["detail"], "a rejection must say what was wrong"
        assert len(r.row["detail"]) <= 400
        assert r.row["topic"] == case["topic"]
        assert r.row["received_at"] == RECEIVED
    # Every row fits the hand-off schemas exactly.
    if pm.rejections:
        pa.Table.from_pylist([r.row for r in pm.rejections], schema=QUARANTINE_SCHEMA)
    for reading in pm.readings:
        schema = landing_schema(reading.feed)
        assert list(reading.row) == schema.names
        pa.Table.from_pylist([reading.row], schema=schema)

    expect = case["expect"]
    if expect == "accept":
        assert got == [], [r.row["detail"] for r in pm.rejections]
        assert len(pm.readings) == case.get("accepted", 1)
    elif expect == "batch":
        assert got == case["reasons"], [r.row["detail"] for r in pm.rejections]
        assert len(pm.readings) == case["accepted"]
        assert [r.row["reading_index"] for r in pm.rejections] == case["indexes"]
        assert pm.records == len(json.loads(payload))
        for r in pm.rejections:  # the bad reading alone, re-encoded, not the whole batch again
            item = json.loads(r.row["payload"])
            assert item == json.loads(payload)[r.row["reading_index"]]
    else:
        assert expect in REASONS, f"corpus names unknown reason {expect!r}"
        assert got == [expect], [r.row["detail"] for r in pm.rejections]
        assert pm.readings == []
        assert pm.records == 1
        row = pm.rejections[0].row
        assert row["reading_index"] is None
        assert row["payload_bytes"] == len(payload)
        if expect == "too_large":  # only a prefix is kept of an oversized payload
            assert payload.startswith(row["payload"]) and len(row["payload"]) < len(payload)
        else:
            assert row["payload"] == payload


def test_unit_variant_case_is_converted(parser: ContractParser) -> None:
    case = next(c for c in CASES if c["name"] == "ok_air_unit_variants")
    (reading,) = parser.parse(case["topic"], _payload(case), RECEIVED).readings
    assert reading.row["pm25_ugm3"] == 35.0
    assert reading.row["co_mgm3"] == 0.7
