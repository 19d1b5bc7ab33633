"""The data-quality report's own endpoints on the real `citypipe serve` over a warehouse built by
the real load chain: /api/v1/quality/seq-gaps (loss upstream of the broker, per device and day)
and /api/v1/quality/runs (validation runs with their Data Docs page)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from support.quality_seed import DAY, GAP_DEVICE, GAP_SITE, SeqPlan, build_quality
from support.serving_helpers import serving

from common.settings import Settings
from serving.routes_datadocs import SITE_PARTS
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.backends("file", "sqlite")]

ONE_DAY = {"start": DAY.isoformat(), "end": DAY.isoformat()}


def q(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with db.reader(settings) as con:
        return con.execute(sql, params or []).fetchall()


def test_seq_gaps_and_validation_runs(settings: Settings, tmp_path: Path) -> None:
    # One warehouse for both endpoints (building it is most of the test's time).
    build_quality(settings)
    check_seq_gaps(settings, tmp_path)
    check_validation_runs(settings, tmp_path)


def check_seq_gaps(settings: Settings, tmp_path: Path) -> None:
    plan = SeqPlan()
    with serving(settings, tmp_path) as server, server.client() as api:
        assert server.client(key=None).get("/api/v1/quality/seq-gaps").status_code == 401

        body = api.get("/api/v1/quality/seq-gaps", params={**ONE_DAY, "feed": "air"}).json()
        by_device = {(r["site_id"], r["device_id"]): r for r in body["rows"]}
        gap = by_device[(GAP_SITE, GAP_DEVICE)]
        assert gap["local_date"] == DAY.isoformat() and gap["feed"] == "air"
        assert (gap["readings"], gap["missing"], gap["gaps"], gap["resets"], gap["repeats"]) == (
            plan.readings,
            plan.missing,
            plan.gaps,
            plan.resets,
            0,
        )
        assert gap["expected_by_seq"] == plan.readings + plan.missing == 360
        kinds = [(a["kind"], a["seq_from"], a["seq_to"], a["missing"]) for a in gap["anomaly_list"]]
        assert kinds == [("gap", 101, 103, 3), ("reset", None, None, 0), ("gap", 101, 105, 5)]
        reset = gap["anomaly_list"][1]
        assert (reset["seq_before"], reset["seq_after"]) == (200, 1)
        # The flat-lined station lost nothing: one row, its readings, no anomaly.
        clean = by_device[("WS-AIR-01", "AQM-0101")]
        assert (clean["readings"], clean["missing"], clean["anomalies"]) == (360, 0, 0)
        assert clean["expected_by_seq"] == 360 and clean["anomaly_list"] == []

        # What the API says is what the warehouse holds, for every feed.
        every = api.get("/api/v1/quality/seq-gaps", params=ONE_DAY).json()["rows"]
        stored = q(
            settings,
            "select site_id, device_id, sum(missing_count), count(*) filter (where kind = 'reset')"
            " from dq.seq_gaps where local_date = ? group by all",
            [DAY],
        )
        assert {(r["site_id"], r["device_id"], r["missing"], r["resets"]) for r in every} >= {
            tuple(s) for s in stored
        }
        assert {r["feed"] for r in every} == {"air", "water", "waterlogging", "traffic"}
        counts = dict(
            q(
                settings,
                "select device_id, count(*) from core.obs_traffic where local_date = ? group by 1",
                [DAY],
            )
        )
        traffic = [r for r in every if r["feed"] == "traffic"]
        assert {r["device_id"]: r["readings"] for r in traffic} == counts

        # Filters, paging, only the device-days with an anomaly, CSV.
        only = [r for r in every if r["anomalies"]]
        assert [(r["site_id"], r["device_id"]) for r in only] == [(GAP_SITE, GAP_DEVICE)]
        site = api.get(
            "/api/v1/quality/seq-gaps", params={**ONE_DAY, "feed": "air", "site_id": GAP_SITE}
        ).json()
        assert [r["device_id"] for r in site["rows"]] == [GAP_DEVICE]
        first = api.get("/api/v1/quality/seq-gaps", params={**ONE_DAY, "limit": 2}).json()
        second = api.get(
            "/api/v1/quality/seq-gaps", params={**ONE_DAY, "limit": 2, "offset": 2}
        ).json()
        assert first["next_offset"] == 2 and first["rows"] + second["rows"] == every[:4]
        assert api.get(
            "/api/v1/quality/seq-gaps", params={"start": "2026-11-22", "end": "2026-11-28"}
        ).json()["rows"] == [r for r in every if r["local_date"] > "2026-11-21"]
        text = api.get(
            "/api/v1/quality/seq-gaps", params={**ONE_DAY, "site_id": GAP_SITE, "format": "csv"}
        )
        assert text.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(text.text)))
        assert len(table) == 1 and table[0]["missing"] == str(plan.missing)
        assert table[0]["anomaly_list"].startswith("gap:101-103(3)@")
        assert "reset:200>1@" in table[0]["anomaly_list"]

        # Bad input: a clear 4xx.
        assert api.get("/api/v1/quality/seq-gaps", params={"feed": "soil"}).status_code == 400
        wrong_feed = api.get(
            "/api/v1/quality/seq-gaps", params={"feed": "water", "site_id": GAP_SITE}
        )
        assert wrong_feed.status_code == 404 and wrong_feed.json()["parameter"] == "site_id"
        assert api.get("/api/v1/quality/seq-gaps", params={"end": "2026-02-30"}).status_code == 400
    assert "Traceback" not in server.log.read_text()


def check_validation_runs(settings: Settings, tmp_path: Path) -> None:
    stored = q(
        settings,
        "select validation_run_id, feed, success, rows, data_docs_url from dq.validation_runs",
    )
    flagged = dict(
        q(
            settings,
            "select validation_run_id, count(distinct (site_id, device_id, lane, observed_at))"
            " from dq.flagged_readings group by 1",
        )
    )
    with serving(settings, tmp_path) as server, server.client() as api:
        assert server.client(key=None).get("/api/v1/quality/runs").status_code == 401
        # The runs that validated readings of the day, whenever they ran.
        body = api.get("/api/v1/quality/runs", params=ONE_DAY).json()
        assert body["data_docs_index"] == "/datadocs/index.html"
        runs = {r["validation_run_id"]: r for r in body["rows"]}
        assert set(runs) == {s[0] for s in stored} and len(runs) == 4
        site_root = settings.gx_dir.joinpath(*SITE_PARTS)
        for vrid, feed, success, rows, path in stored:
            run = runs[vrid]
            assert (run["feed"], run["success"], run["rows"]) == (feed, success, rows)
            assert run["flagged_readings"] == flagged.get(vrid, 0)
            assert run["local_dates"] == [DAY.isoformat()]
            assert sum(f["readings"] for f in run["flagged"]) >= run["flagged_readings"]
            assert run["statistics"]["evaluated_expectations"] == run["evaluated_expectations"]
            url = run["data_docs_url"]
            assert url.startswith("/datadocs/validations/") and url.endswith(".html")
            page = site_root / unquote(url.removeprefix("/datadocs/"))
            assert page.is_file() and str(page) == path
            # The link opens the run's page on this server (serving/routes_datadocs.py).
            served = api.get(url)
            assert served.status_code == 200 and vrid in served.text
        air = next(r for r in runs.values() if r["feed"] == "air")
        assert air["success"] is False
        assert {"expectation": "pm25_ugm3_in_range", "readings": 1} in air["flagged"]
        assert any(f["expectation"].startswith("flatline_") for f in air["flagged"])

        water = api.get("/api/v1/quality/runs", params={**ONE_DAY, "feed": "water"}).json()
        assert [r["feed"] for r in water["rows"]] == ["water"]
        # Run today, but of readings of DAY: not among the runs of the last 7 days.
        assert api.get("/api/v1/quality/runs").json()["rows"] == []
        assert (
            api.get(
                "/api/v1/quality/runs", params={"start": "2026-11-22", "end": "2026-11-28"}
            ).json()["rows"]
            == []
        )
        text = api.get("/api/v1/quality/runs", params={**ONE_DAY, "format": "csv"})
        assert len(list(csv.DictReader(io.StringIO(text.text)))) == 4
        assert api.get("/api/v1/quality/runs", params={"feed": "x;drop"}).status_code == 400
    assert "Traceback" not in server.log.read_text()
