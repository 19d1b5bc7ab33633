"""The CSV downloads (serving/responses.csv_page) keep spreadsheet formulas from the data inert:
a text cell starting with =, +, -, @, tab or CR gets a leading ' (OWASP "CSV injection")."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from serving.responses import csv_cell, csv_page


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://127.0.0.1:9/x","x")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\t=1",
        "\r=1",
    ],
)
def test_a_formula_in_text_is_prefixed(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["AQM-0101", "a=b", "", " =1", 0, -1.5, 3, True])
def test_other_values_stay_as_they_are(value: object) -> None:
    assert csv_cell(value) == value


def test_none_is_an_empty_cell() -> None:
    assert csv_cell(None) == ""


def test_the_download_neutralises_every_cell_and_keeps_numbers() -> None:
    rows = [
        {"device_id": "=1+1", "value": -3.5, "detail": "@x", "site_id": "WS-AIR-01"},
        {"device_id": "-2+3", "value": None, "detail": "ok", "site_id": "+x"},
    ]
    got = csv_page(
        {"rows": rows, "next_offset": None}, "flagged", date(2026, 12, 1), date(2026, 12, 1)
    )
    parsed = list(csv.reader(io.StringIO(bytes(got.body).decode())))
    assert parsed == [
        ["device_id", "value", "detail", "site_id"],
        ["'=1+1", "-3.5", "'@x", "WS-AIR-01"],
        ["'-2+3", "", "ok", "'+x"],
    ]
