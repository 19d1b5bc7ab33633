"""docs/feeds.md and docs/schemas/*.json agree with the parser and the simulator."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from support import TEST_DATA

from common.catalogue import Catalogue
from common.settings import REPO_ROOT
from common.units import UNITS
from ingestion.contract import FLAGS, REASONS, ContractParser
from ingestion.schema import VALUE_COLUMNS
from simulator.simulate import generate

DOCS = REPO_ROOT / "docs"
FEEDS_MD = (DOCS / "feeds.md").read_text("utf-8")
SCHEMAS = {
    feed: json.loads((DOCS / "schemas" / f"{feed}.v1.json").read_text()) for feed in VALUE_COLUMNS
}
LATER = datetime(2030, 1, 1, tzinfo=UTC)
CASES: list[dict[str, Any]] = tomllib.loads(
    (TEST_DATA / "corpus" / "cases.toml").read_text("utf-8")
)["case"]

# Reasons a JSON Schema can see in one reading (others need the catalogue, the clock or bytes).
SCHEMA_VISIBLE = {
    "missing_field",
    "wrong_type",
    "unknown_schema",
    "schema_mismatch",
    "negative_seq",
    "bad_period",
    "bad_number",
    "unknown_field",
    "unknown_unit",
    "bad_flag",
    "bad_direction",
    "lane_not_allowed",
    "naive_timestamp",
}

# JSON Schema treats 1042.0 as an integer (same JSON number); the parser insists on 1042.
SCHEMA_BLIND = {"float_seq"}


def _not_json(token: str) -> Any:
    raise ValueError(token)


def validator(feed: str) -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema",
        reason="jsonschema is not installed (it is optional: the parser is the authority)",
    )
    cls = jsonschema.Draft202012Validator
    cls.check_schema(SCHEMAS[feed])
    return cls(SCHEMAS[feed])


@pytest.fixture(scope="module")
def parser(catalogue: Catalogue) -> ContractParser:
    return ContractParser(catalogue, city="wushan")


def test_reason_table_lists_every_reason_code() -> None:
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \| (?:message|reading)", FEEDS_MD, re.M))
    assert documented == set(REASONS)


def test_schemas_match_the_parser_tables() -> None:
    for feed, schema in SCHEMAS.items():
        props = schema["properties"]
        assert props["schema"]["const"] == f"{feed}/v1"
        assert set(props["values"]["properties"]) == set(VALUE_COLUMNS[feed])
        for field, spec in props["units"]["properties"].items():
            assert set(spec["enum"]) == set(UNITS[feed][field]), (feed, field)
        assert set(props["flags"]["items"]["enum"]) == FLAGS
        assert ("lane" in schema["required"]) == (feed == "traffic")


@pytest.mark.parametrize("feed", list(VALUE_COLUMNS))
def test_schema_examples_validate_and_parse(feed: str, parser: ContractParser) -> None:
    v = validator(feed)
    for example in SCHEMAS[feed]["examples"]:
        v.validate(example)
        topic = f"city/wushan/{feed}/{example['site_id']}"
        pm = parser.parse(topic, json.dumps(example).encode(), LATER)
        assert pm.rejections == [] and len(pm.readings) == 1


def test_docs_json_examples_validate_and_parse(parser: ContractParser) -> None:
    blocks = re.findall(r"```json\n(.*?)```", FEEDS_MD, re.S)
    assert blocks
    for block in blocks:
        doc = json.loads(block)
        feed = doc["schema"].split("/")[0]
        validator(feed).validate(doc)
        pm = parser.parse(f"city/wushan/{feed}/{doc['site_id']}", block.encode(), LATER)
        assert pm.rejections == [] and len(pm.readings) == 1


def test_simulator_readings_validate(catalogue: Catalogue) -> None:
    validators = {feed: validator(feed) for feed in VALUE_COLUMNS}
    seen: Counter[tuple[str, str]] = Counter()
    for m in generate(catalogue, date(2026, 7, 14), 1, 2, "heavy"):
        if m.kind == "malformed" or (m.expected != "accept" and m.kind != "batch"):
            continue
        feed = m.topic.split("/")[2]
        if seen[(feed, m.kind)] >= 300:  # a sample of each kind keeps jsonschema's cost down
            continue
        doc = json.loads(m.payload)
        for reading, outcome in zip(
            doc if isinstance(doc, list) else [doc], m.outcomes, strict=True
        ):
            if outcome == "accept":
                validators[feed].validate(reading)
                seen[(feed, m.kind)] += 1
    assert {f for f, _ in seen} == set(VALUE_COLUMNS)
    assert ("air", "unit_variant") in seen


def test_schema_rejects_what_the_parser_rejects_when_it_can_see_it() -> None:
    checked = 0
    for case in CASES:
        if case["expect"] not in SCHEMA_VISIBLE or "payload" not in case:
            continue
        if case["name"] in SCHEMA_BLIND:
            continue
        try:
            doc = json.loads(case["payload"], parse_constant=_not_json)
        except ValueError:  # NaN/Infinity are not JSON: no schema validator ever sees them
            continue
        feed = case["topic"].split("/")[2]
        if not isinstance(doc, dict) or feed not in SCHEMAS:
            continue
        errors = list(validator(feed).iter_errors(doc))
        assert errors, f"JSON Schema accepts corpus case {case['name']} ({case['expect']})"
        checked += 1
    assert checked >= 25
