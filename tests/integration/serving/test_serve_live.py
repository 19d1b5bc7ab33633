"""`/api/v1/live/...` through a real `citypipe serve` process, over a warehouse built by the real
load chain and the intraday run: provisional values as stored, every row marked; the daily run
then finalizes yesterday and the API switches to its rows; keys and bad parameters."""

from __future__ import annotations

import time
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.intraday_helpers import WET_OPEN, land, local
from support.serving_helpers import load, serving

from common.settings import Settings
from transforms.daily import compute_day
from transforms.intraday import compute_intraday
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.backends("file", "sqlite")]

DAY = date(2026, 11, 25)  # in the past of the real clock: no reading is in the future


def test_live_endpoints(settings: Settings, tmp_path: Path) -> None:
    day = DAY
    now = local(day, 10, 25)
    yesterday = day - timedelta(days=1)
    land(settings, local(yesterday), now)
    load(settings, "live-1")
    compute_intraday(settings, now=now)
    with db.reader(settings) as con:
        stored = con.execute(
            "select hour_end_local, aqi, primary_pollutants from kpi.intraday_air_hourly"
            " where scope = 'county' and local_date = ? order by hour_end_local desc",
            [day],
        ).fetchall()
    assert len(stored) == 10

    with serving(settings, tmp_path) as server, server.client() as client:
        # no key, no data
        assert server.client(key=None).get("/api/v1/live/air/hourly").status_code == 401

        got = wait_for(client, "/api/v1/live/air/hourly", {"site_id": "county"}, "provisional")
        # default day: the open day of the last intraday run
        assert got["day"] == day.isoformat() and got["status"] == "provisional"
        assert got["last_run"]["data_until"].startswith(
            now.replace(minute=0).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        )
        assert [r["status"] for r in got["rows"]] == ["provisional"] * 10
        assert [(r["aqi"], r["primary_pollutants"]) for r in got["rows"]] == [
            (r[1], r[2]) for r in stored
        ]

        one = client.get("/api/v1/live/air/hourly", params={"site_id": "WS-AIR-02"}).json()
        assert {r["scope"] for r in one["rows"]} == {"WS-AIR-02"} and one["count"] == 10

        before = client.get(
            "/api/v1/live/air/hourly", params={"day": yesterday.isoformat(), "site_id": "county"}
        ).json()
        assert before["status"] == "provisional" and before["count"] == 24

        tpi = client.get("/api/v1/live/traffic/tpi", params={"district": "county"}).json()
        assert tpi["status"] == "provisional" and tpi["count"] == 10
        assert all(r["status"] == "provisional" and r["tpi"] is not None for r in tpi["rows"])

        wet = client.get("/api/v1/live/waterlogging/current").json()
        assert wet["status"] == "provisional" and wet["open_events"] == 1
        depth = next(d for d in wet["depths"] if d["site_id"] == WET_OPEN[0])
        assert depth["level_code"] == "closure" and depth["status"] == "provisional"
        assert [e["site_id"] for e in wet["events"] if e["event_status"] == "ongoing"] == [
            WET_OPEN[0]
        ]

        good = client.get("/api/v1/live/air/good-days").json()
        assert good["status"] == "provisional"
        g = good["good_days"]
        assert g["open_day"] == day.isoformat() and g["open_day_counted"] is False
        assert (g["good_days_so_far"], g["valid_days_so_far"], g["counted_through"]) == (0, 0, None)
        assert g["hours_so_far"] == 10 and g["last_hour_aqi"] == stored[0][1]

        # bad parameters: a clear 4xx
        assert (
            client.get("/api/v1/live/air/hourly", params={"day": "2026-02-30"}).status_code == 400
        )
        assert (
            client.get("/api/v1/live/air/hourly", params={"site_id": "WS-WAT-01"}).status_code
            == 404
        )
        assert (
            client.get("/api/v1/live/traffic/tpi", params={"district": "mars"}).status_code == 404
        )
        assert client.get("/api/v1/live/air/hourly", params={"limit": "1e309"}).status_code == 422

        # The 01:00 run computes yesterday, the next intraday run drops its provisional rows:
        # the API serves the daily run's rows, final, with the same values.
        compute_day(settings, yesterday, as_of=now)
        compute_intraday(settings, now=now)
        after = wait_for(
            client,
            "/api/v1/live/air/hourly",
            {"day": yesterday.isoformat(), "site_id": "county"},
            "final",
        )
        assert after["count"] == 24
        assert all(r["status"] == "final" and r["kpi_status"] for r in after["rows"])
        assert [(r["hour_end"], r["aqi"]) for r in after["rows"]] == [
            (r["hour_end"], r["aqi"]) for r in before["rows"]
        ]
        good = client.get("/api/v1/live/air/good-days").json()["good_days"]
        assert good["counted_through"] == yesterday.isoformat()
        assert (good["valid_days_so_far"], good["open_day_counted"]) == (1, False)

        # Just after midnight the open day has no complete hour yet: by default the API shows
        # the day of the last complete hour (the day before), still provisional.
        compute_intraday(settings, now=local(day + timedelta(days=1), 0, 5))
        deadline = time.monotonic() + 60
        while True:
            late = client.get("/api/v1/live/air/hourly", params={"site_id": "county"}).json()
            if late["last_run"]["open_day"] == (day + timedelta(days=1)).isoformat():
                break
            assert time.monotonic() < deadline, late
            time.sleep(0.3)
        assert late["day"] == day.isoformat() and late["status"] == "provisional"
        assert late["count"] == 24 and late["last_run"]["last_hour_day"] == day.isoformat()


def wait_for(client: Any, path: str, params: dict[str, str], status: str) -> dict[str, Any]:
    """The answer once the server reads the newest write (the file backend's snapshot is
    published about a second after the writer leaves)."""
    deadline = time.monotonic() + 60
    while True:
        r = client.get(path, params=params)
        body = r.json() if r.status_code == 200 else {}
        if body.get("status") == status:
            return body
        assert time.monotonic() < deadline, (r.status_code, r.text[:500])
        time.sleep(0.3)
