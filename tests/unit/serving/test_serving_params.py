"""Parameter validation and API keys of the read-only API, without a server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from common.catalogue import Catalogue
from common.settings import get_settings
from serving.app import _dimensions
from serving.keys import NoApiKeys, key_matches, load_keys, parse_keys, presented_key
from serving.params import (
    MAX_RANGE_DAYS,
    BadParameter,
    choice,
    date_range,
    identifier,
    known,
    parse_date,
)

TODAY = date(2026, 6, 10)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2026-13-01",
        "20260101",
        "2026-1-1",
        "yesterday",
        "' or 1=1 --",
        "",
        "1e309",
        "2026-01-01T00:00",
        "99999-01-01",
        "1999-12-31",
        "2101-01-01",
        "../../etc/passwd",
    ],
)
def test_bad_dates_are_refused_with_the_parameter_named(text: str) -> None:
    with pytest.raises(BadParameter) as err:
        parse_date(text, "start")
    assert err.value.name == "start" and err.value.status == 400


def test_a_good_date_parses() -> None:
    assert parse_date(" 2026-02-28 ", "end") == date(2026, 2, 28)


def test_date_range_defaults_and_limits() -> None:
    assert date_range(None, None, today=TODAY) == (TODAY, TODAY)
    assert date_range(None, "2026-06-07", today=TODAY, default_days=7) == (
        date(2026, 6, 1),
        date(2026, 6, 7),
    )
    assert date_range("2026-01-01", None, today=TODAY)[1] == TODAY
    with pytest.raises(BadParameter, match="before start"):
        date_range("2026-06-10", "2026-06-01", today=TODAY)
    with pytest.raises(BadParameter, match=f"at most {MAX_RANGE_DAYS}"):
        date_range("2020-01-01", "2026-01-01", today=TODAY)
    with pytest.raises(BadParameter, match="at most 31"):
        date_range("2026-01-01", "2026-03-01", today=TODAY, max_days=31)


@pytest.mark.parametrize(
    "value",
    [
        "x' or '1'='1",
        "a;drop table kpi.runs",
        "../etc/passwd",
        "..",
        "a/b",
        "%00",
        "a b",
        "é",
        "x" * 81,
        "-leading",
        "😀",
        "a\nb",
        "",
    ],
)
def test_ids_outside_the_alphabet_are_refused(value: str) -> None:
    with pytest.raises(BadParameter, match="not a valid id"):
        identifier(value, "site_id")


@pytest.mark.parametrize("value", ["air.aqi", "WS-AIR-01", "old_town", "flatline_pm25_ugm3"])
def test_real_ids_pass(value: str) -> None:
    assert identifier(value, "x") == value
    assert identifier(None, "x") is None


def test_unknown_but_well_formed_ids_are_404_and_choices_400() -> None:
    with pytest.raises(BadParameter) as err:
        known("WS-AIR-99", frozenset({"WS-AIR-01"}), "site_id", "site")
    assert err.value.status == 404 and "unknown site" in err.value.message
    assert known("WS-AIR-01", frozenset({"WS-AIR-01"}), "site_id", "site") == "WS-AIR-01"
    with pytest.raises(BadParameter) as err2:
        choice("xml", ("json", "csv"), "format")
    assert err2.value.status == 400 and "json, csv" in err2.value.message


def test_long_values_are_not_echoed_whole() -> None:
    with pytest.raises(BadParameter) as err:
        identifier("x" * 5000, "site_id")
    assert len(err.value.message) < 200


def test_dimension_levels(catalogue: Catalogue) -> None:
    present = {"county", "gaotang", "old_town", "WS-AIR-01", "WS-WAT-01"}
    assert _dimensions(None, None, present, catalogue) is None
    assert _dimensions(None, "county", present, catalogue) == ["county"]
    assert _dimensions(None, "site", present, catalogue) == ["WS-AIR-01", "WS-WAT-01"]
    assert _dimensions(None, "district", present, catalogue) == ["gaotang", "old_town"]
    assert _dimensions("gaotang", None, present, catalogue) == ["gaotang"]
    # a dimension outside the level asked for: nothing, rather than the wrong rows
    assert _dimensions("gaotang", "site", present, catalogue) == []


# -- keys -------------------------------------------------------------------------------------


def test_keys_parse_from_commas_lines_and_comments() -> None:
    text = "# ops centre\nkey-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb\n\n  key-cccccccccccccccc  \n"
    assert parse_keys(text) == (
        "key-aaaaaaaaaaaaaaaa",
        "key-bbbbbbbbbbbbbbbb",
        "key-cccccccccccccccc",
    )


def test_no_key_configured_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYPIPE_API_KEYS", raising=False)
    monkeypatch.delenv("CITYPIPE_API_KEYS_FILE", raising=False)
    with pytest.raises(NoApiKeys, match="CITYPIPE_API_KEYS"):
        load_keys(get_settings())
    monkeypatch.setenv("CITYPIPE_API_KEYS", " , ")
    with pytest.raises(NoApiKeys, match="no API key"):
        load_keys(get_settings())
    monkeypatch.setenv("CITYPIPE_API_KEYS", "short")
    with pytest.raises(NoApiKeys, match="shorter than 16"):
        load_keys(get_settings())


def test_keys_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# one a line\nfile-key-0123456789abcdef\n")
    monkeypatch.delenv("CITYPIPE_API_KEYS", raising=False)
    monkeypatch.setenv("CITYPIPE_API_KEYS_FILE", str(path))
    assert load_keys(get_settings()) == ("file-key-0123456789abcdef",)


def test_presented_key_and_matching() -> None:
    keys = ("k" * 20, "m" * 20)
    assert presented_key("k" * 20, None) == "k" * 20
    assert presented_key(None, "Bearer " + "m" * 20) == "m" * 20
    assert presented_key(None, "bearer   " + "m" * 20) == "m" * 20
    assert presented_key(None, "Basic abc") is None
    assert presented_key(None, "Bearer ") is None
    assert key_matches("m" * 20, keys)
    assert not key_matches("m" * 19, keys)
    assert not key_matches("", keys)
    assert not key_matches(None, keys)
    assert not key_matches("k" * 20 + "x", keys)
    assert not key_matches("ķ" * 20, keys)  # non-ASCII never raises
