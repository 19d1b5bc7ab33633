"""`/api/v1/pack/{day}/as-published?at=WHEN` through a real `citypipe serve`: on DuckLake the pack
as it stood at WHEN (the same document as `citypipe kpis --as-published`), on the single file a
clear 409 (its snapshot copy keeps no history), and 4xx for bad parameters."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.kpi_history import SECTION, D, publish_then_restate
from support.serving_helpers import serving

from citypipe.cli import main
from common.settings import Settings

PATH = f"/api/v1/pack/{D}/as-published"


def section(doc: dict[str, object]) -> object:
    kpis = doc["kpis"]
    assert isinstance(kpis, list)
    return next(k["value_text"] for k in kpis if (k["kpi_id"], k["dimension"]) == SECTION)


def history(wh, insert_obs) -> datetime:
    """D published (section Class I), then restated (Class IV); an instant in between."""
    instants: list[datetime] = []

    def between() -> None:
        time.sleep(0.05)
        instants.append(datetime.now(UTC))
        time.sleep(0.05)

    publish_then_restate(wh, insert_obs, between)
    wh.close()
    return instants[0]


@pytest.mark.backends("sqlite")
def test_the_pack_as_published_on_a_lake_is_the_commands(
    wh, insert_obs, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    then = history(wh, insert_obs)
    at = then.isoformat()
    capsys.readouterr()
    assert main(["kpis", "--date", D.isoformat(), "--as-published", at, "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)

    with serving(settings, tmp_path) as server, server.client() as http:
        r = http.get(PATH, params={"at": at})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc == cli
        assert section(doc) == "I"
        restated = {(x["kpi_id"], x["dimension"], x["old_value_text"], x["new_value_text"])
                    for x in doc["restated_since"]}  # fmt: skip
        assert (*SECTION, "I", "IV") in restated

        # Now: the current pack, nothing restated since; the same as /pack/{day}'s values.
        now = http.get(PATH, params={"at": datetime.now(UTC).isoformat()}).json()
        assert section(now) == "IV" and now["restated_since"] == []
        assert now["as_published"]["snapshot_id"] > doc["as_published"]["snapshot_id"]
        current = http.get(f"/api/v1/pack/{D}").json()
        assert {(k["kpi_id"], k["dimension"], k["value"]) for k in now["kpis"]} == {
            (k["kpi_id"], k["dimension"], k["value"]) for k in current["kpis"]
        }

        # A local time without an offset, a date (its end), a KPI prefix.
        local = then.astimezone(ZoneInfo(settings.timezone)).replace(tzinfo=None).isoformat()
        local_doc = http.get(PATH, params={"at": local})
        assert local_doc.status_code == 200, local_doc.text
        assert local_doc.json()["as_published"]["snapshot_id"] == doc["as_published"]["snapshot_id"]
        by_date = http.get(PATH, params={"at": "2030-01-01", "kpi": "water.section"}).json()
        assert {k["kpi_id"] for k in by_date["kpis"]} == {SECTION[0]}

        # Before the lake's history: nothing published then (404, says why).
        before = http.get(PATH, params={"at": "2020-01-01T00:00:00+08:00"})
        assert before.status_code == 404 and "history starts" in before.json()["error"]


@pytest.mark.backends("file")
def test_the_single_file_says_it_keeps_no_history(
    wh, insert_obs, settings: Settings, tmp_path: Path
) -> None:
    history(wh, insert_obs)
    with serving(settings, tmp_path) as server, server.client() as http:
        r = http.get(PATH, params={"at": "2026-06-11"})
        assert r.status_code == 409, r.text
        body = r.json()
        assert "DuckLake" in body["error"] and body["backend"] == "file"
        see = http.get(body["see"])  # where to look instead: the changes of D's values
        assert see.status_code == 200
        assert SECTION[0] in {row["kpi_id"] for row in see.json()["rows"]}


@pytest.mark.backends("file")
def test_bad_parameters_get_a_4xx_never_a_500(
    wh, insert_obs, settings: Settings, tmp_path: Path
) -> None:
    history(wh, insert_obs)
    bad = [
        (PATH, {"at": "yesterday"}, 400),
        (PATH, {"at": "2026-02-30"}, 400),
        (PATH, {"at": "2026-06-11T25:00"}, 400),
        (PATH, {"at": "1999-12-31"}, 400),
        (PATH, {"at": "9999-12-31T23:59:59+14:00"}, 400),
        (PATH, {"at": "2026-06-11' or 1=1 --"}, 400),
        (PATH, {"at": "9" * 500}, 422),
        (PATH, {}, 422),
        (PATH, {"at": "2026-06-11", "kpi": "../../etc"}, 400),
        ("/api/v1/pack/2026-13-01/as-published", {"at": "2026-06-11"}, 400),
        ("/api/v1/pack/..%2F..%2Fetc/as-published", {"at": "2026-06-11"}, 404),  # no such path
    ]
    with serving(settings, tmp_path) as server, server.client() as http:
        for path, params, status in bad:
            r = http.get(path, params=params)
            assert r.status_code == status, (path, params, r.status_code, r.text)
            assert "error" in r.json() or "detail" in r.json()
        with server.client(key=None) as anonymous:
            assert anonymous.get(PATH, params={"at": "2026-06-11"}).status_code == 401
