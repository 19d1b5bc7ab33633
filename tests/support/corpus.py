"""The malformed-message corpus (tests/data/corpus/cases.toml) and its payloads."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from typing import Any

from support import TEST_DATA

CORPUS = TEST_DATA / "corpus"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text("utf-8"))["case"]
RECEIVED = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
LIMIT = 262144

_READING = {
    "schema": "air/v1",
    "site_id": "WS-AIR-01",
    "device_id": "AQM-0101",
    "seq": 1,
    "observed_at": "2026-11-28T13:55:00+08:00",
    "period_s": 60,
    "values": {"pm25": 35.0, "pm10": 58.0},
}


def _generate(kind: str) -> bytes:
    # Big payloads are built here so that nothing near 1 MiB sits in git.
    if kind == "1mib":
        filler = "x" * (1024 * 1024)
        return json.dumps({**_READING, "device_id": filler}).encode()
    if kind == "limit_plus_one":
        body = json.dumps({**_READING, "device_id": ""}).encode()
        pad = LIMIT + 1 - len(body)
        return json.dumps({**_READING, "device_id": "x" * pad}).encode()
    if kind == "deep_100k":
        return b"[" * 100_000 + b"]" * 100_000
    if kind == "batch_1001":
        return json.dumps([{**_READING, "seq": i} for i in range(1001)]).encode()
    if kind == "dates_32":  # one reading a day for 32 days: one local date over the limit
        return json.dumps(
            [
                {
                    **_READING,
                    "seq": i,
                    "observed_at": f"2026-{10 + (27 + i) // 31}-{(27 + i) % 31 + 1:02d}T13:55:00+08:00",
                }
                for i in range(32)
            ]
        ).encode()
    if kind == "int_5000_digits":  # past Python's int-conversion limit (4300 digits)
        return (
            json.dumps({**_READING, "values": {"pm25": 0}}).replace("0}", "9" * 5000 + "}").encode()
        )
    raise ValueError(kind)


def _payload(case: dict[str, Any]) -> bytes:
    if "payload" in case:
        return case["payload"].encode("utf-8")
    if "payload_file" in case:
        return (CORPUS / case["payload_file"]).read_bytes()
    return _generate(case["generate"])
