"""`citypipe serve` as a real uvicorn process over a warehouse built by the real load and KPI
run, on the single DuckDB file (served from snapshots) and on DuckLake with a SQLite catalog
(the read and injection test also with a PostgreSQL catalog). The spec-driven contract test is
test_serve_contract.py; these are the hand-written attacks and the read-during-write proof."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from support.rel_readers import read_while_writing, reader_endpoints
from support.serving_helpers import API_KEY, Server, build, land_day, load, serve_env, serving

from common.settings import Settings
from transforms.daily import compute_day
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.backends("file", "sqlite")]

DAY = date(2026, 11, 21)

# Valid values for each query parameter (so that one parameter at a time can be made bad).
GOOD = {
    "start": DAY.isoformat(),
    "end": DAY.isoformat(),
    "as_of": DAY.isoformat(),
    "day": DAY.isoformat(),
    "kpi_id": "air.aqi",
    "site_id": "WS-AIR-01",
    "dimension": "county",
    "level": "county",
    "period": "day",
    "feed": "air",
    "district": "county",
    "hour": "8",
    "expectation": "pm25_ugm3_in_range",
    "reason": "bad_json",
    "format": "json",
    "limit": "10",
    "offset": "0",
    "hours": "24",
    "at": "2100-01-01",  # as published by the end of time: the newest published pack
    "kpi": "air",
}
# The single DuckDB file keeps no history: as-published answers 409 there (serving.md).
NO_HISTORY_ON_FILE = "/api/v1/pack/{day}/as-published"


def ok_status(path: str, settings: Settings) -> int:
    lake = settings.warehouse_target.kind != "file"
    return 200 if lake or path != NO_HISTORY_ON_FILE else 409


SITE_BY_FEED = {"water": "WS-WAT-01", "waterlogging": "WS-WLG-01"}
ATTACKS = (
    "' or '1'='1",
    "1; drop table kpi.pack_values; --",
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "\x00",
    "9" * 400,
    "-99999999999999999999",
    "1e309",
    "2026-02-30",
    "99999-01-01",
    "<script>alert(1)</script>",
    "😀",
    "",
    # Unicode look-alikes: full-width digits and letters, Arabic-Indic digits, a zero-width
    # space, a right-to-left override.
    "２０２６-１１-２１",
    "ＷＳ-AIR-01",
    "١٢",
    "WS-AIR-01\u200b",
    "\u202eevil",
    "NaN",
    "-1",
    "0x1F",
    "a" * 5000,
    "%",
    "\\",
    "${jndi:ldap://127.0.0.1/a}",
    "' union select * from meta.load_ledger --",
    "x\r\nSet-Cookie: injected=1",
)
# Raw URLs no client library would build: bad percent-escapes and invalid UTF-8, and paths
# that try to climb out of /static.
RAW_QUERIES = ("%FF%FE", "%C0%AE%C0%AE%2F", "%ED%A0%80", "%E4%B8", "%%", "%0d%0aX-Injected:%201")
TRAVERSALS = (
    "/static/../serving/app.py",
    "/static/%2e%2e/app.py",
    "/static/..%2fapp.py",
    "/static/..%2F..%2Fpyproject.toml",
    "/static/vendor/..%2F..%2Fapp.py",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static/....//....//app.py",
    "/static/%c0%ae%c0%ae/app.py",
    "/static//etc/passwd",
    "/api/v1/pack/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/v1/kpis/%FF",
)


def get_paths(client: httpx.Client) -> dict[str, list[str]]:
    """Every GET path of the OpenAPI spec with its parameter names."""
    spec = client.get("/openapi.json").json()
    return {
        path: [p["name"] for p in op["get"].get("parameters", [])]
        for path, op in spec["paths"].items()
        if "get" in op
    }


def url_for(
    path: str, params: list[str], bad: tuple[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    values = {p: GOOD[p] for p in params}
    if "site_id" in values:  # a site of the path's feed
        for feed, site in SITE_BY_FEED.items():
            if f"/{feed}/" in path:
                values["site_id"] = site
    if bad is not None:
        values[bad[0]] = bad[1]
    for name in list(values):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(values.pop(name), safe="") or "%20")
    return path, values


def empty(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    for key in ("rows", "kpis", "alerts", "sites"):
        if key in body:
            return not body[key]
    return body.get("good_days") is None


def answered_sanely(r: httpx.Response, what: object) -> None:
    """A 4xx with a message, or a 200 with an empty result; never a 5xx; no injected header."""
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    assert "injected" not in str(r.headers).lower(), (what, r.headers)
    assert "x-injected" not in r.headers, (what, r.headers)
    if 300 <= r.status_code < 400:  # a trailing slash dropped: to this server only
        target = urlsplit(r.headers["location"])
        assert target.netloc in ("", r.url.netloc.decode()), (what, r.headers["location"])
    elif 400 <= r.status_code < 500:
        if r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            assert body.get("error") or body.get("detail"), (what, r.text)
    else:
        assert r.status_code == 200 and empty(r.json()), (what, r.text)


def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` (a request line and headers, as bytes) on a socket; the status line."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def hostile_requests(
    server: Server, api: httpx.Client, paths: dict[str, list[str]], settings: Settings
) -> int:
    """Repeated parameters, raw and overlong URLs, climbing out of /static, forged and
    malformed headers. Returns how many requests were sent."""
    sent = 0
    # Repeated parameters: FastAPI takes the last one; either order must be safe.
    for path, params in paths.items():
        url, query = url_for(path, params)
        ok = ok_status(path, settings)
        for name, good in query.items():
            for attack in ("' or '1'='1", "9" * 400, "2026-02-30"):
                for pair in ((attack, good), (good, attack)):
                    items = [(k, v) for k, v in query.items() if k != name]
                    r = api.get(url, params=items + [(name, v) for v in pair])
                    sent += 1
                    if pair[-1] == good:
                        assert r.status_code == ok, (path, name, pair, r.text[:300])
                    else:
                        answered_sanely(r, (path, name, pair))
    # Raw escapes (invalid UTF-8, CR LF) in every parameter, query or path.
    for path, params in paths.items():
        for name in params:
            for raw in RAW_QUERIES:
                url, query = url_for(path.replace("{" + name + "}", raw), params)
                query.pop(name, None)
                here = "" if "{" + name + "}" in path else f"{name}={raw}"
                target = url + "?" + "&".join(filter(None, (here, urlencode(query))))
                r = api.get(target)
                sent += 1
                answered_sanely(r, (target,))
    for target in TRAVERSALS:
        r = api.get(target)
        sent += 1
        assert r.status_code in (400, 404, 422), (target, r.status_code, r.text[:200])
        assert "create_app" not in r.text and "[project]" not in r.text and "root:" not in r.text
    # Overlong URLs: refused (or the connection closed) by the HTTP layer, never a 500; the
    # server lives on.
    for size in (8_000, 64_000, 1_000_000):
        head = f"GET /api/v1/sites?feed={'a' * size} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += f"X-API-Key: {API_KEY}\r\nConnection: close\r\n\r\n"
        try:
            status = raw_request(server.url, head.encode())
        except OSError:  # closed while the request was still being sent
            status = b""
        sent += 1
        assert status == b"" or status.split()[1][:1] == b"4", (size, status)
    # Headers: a forged key in second place, a key padded with spaces or in another case,
    # overlong and non-ASCII values, a header folded over two lines, a request smuggling
    # attempt. The key is never taken from anywhere but the first X-API-Key / Authorization.
    key = API_KEY.encode()
    heads = {
        b"X-API-Key: wrong-key-0123456789\r\nX-API-Key: " + key: (401,),
        b"X-API-Key: " + key.upper(): (401,),
        b"Authorization: Bearer  " + key + b"  ": (200,),
        b"Authorization: bearer " + key: (200,),
        b"Authorization: Bearer " + key + b" extra": (401,),
        b"X-API-Key: " + b"k" * 60_000: (400, 401, 413, 431),
        b"X-API-Key: \xff\xfe" + key: (401,),
        b"X-API-Key: \xe5\xaf\x86\xe9\x92\xa5": (401,),
        b"X-API-Key: \r\n " + key: (400, 401),
        b"Cookie: citypipe_session=" + b"\xff" * 300: (401,),
        b"Cookie: citypipe_session=1.2.3; citypipe_session=" + key: (401,),
        b"Content-Length: 5\r\nTransfer-Encoding: chunked": (400, 401),
    }
    for extra, expected in heads.items():
        head = b"GET /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra
        status = raw_request(server.url, head + b"\r\nConnection: close\r\n\r\n")
        sent += 1
        code = int(status.split()[1]) if status.startswith(b"HTTP/1.1 ") else 400
        assert code in expected, (extra[:80], status)
    assert api.get("/health").status_code == 200
    return sent


@pytest.mark.backends("file", "sqlite", "postgres")
def test_every_endpoint_needs_a_key_serves_the_warehouse_and_refuses_bad_input(
    settings: Settings, tmp_path: Path
) -> None:
    build(settings, DAY)
    with serving(settings, tmp_path) as server, server.client() as api, server.client(None) as anon:
        paths = get_paths(api)
        assert "/api/v1/kpis/{kpi_id}" in paths and "/api/v1/quality/flagged" in paths
        for extra in ("/openapi.json", "/docs", "/ready"):
            paths.setdefault(extra, [])
        # Keys: none, a wrong one, one too long, a Bearer token; /health alone is open.
        assert anon.get("/health").json() == {"status": "ok"}
        for path, params in paths.items():
            if path == "/health":
                continue
            url, query = url_for(path, params)
            for headers in (
                {},
                {"X-API-Key": "wrong-key-0123456789"},
                {"X-API-Key": API_KEY + "x"},
                {"Authorization": "Basic " + API_KEY},
            ):
                r = anon.get(url, params=query, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert "API key" in r.json()["error"]
            ok = anon.get(url, params=query, headers={"Authorization": f"Bearer {API_KEY}"})
            assert ok.status_code == ok_status(path, settings), (path, ok.text)

        # What the API serves is what the warehouse holds.
        with db.reader(settings) as con:
            pack = con.execute(
                "select kpi_id, dimension, value from kpi.pack_values where local_date = ?", [DAY]
            ).fetchall()
            flagged = con.execute(
                "select count(*) from dq.flagged_readings where local_date = ?", [DAY]
            ).fetchone()
        latest = api.get("/api/v1/pack/latest").json()
        assert latest["date"] == DAY.isoformat() and latest["count"] == len(pack) > 0
        served = {(k["kpi_id"], k["dimension"]): k["value"] for k in latest["kpis"]}
        assert served == {(k, d): v for k, d, v in pack}
        aqi = api.get("/api/v1/kpis/air.aqi", params={"start": DAY, "end": DAY, "level": "county"})
        assert [r["dimension"] for r in aqi.json()["rows"]] == ["county"]
        stations = api.get("/api/v1/air/stations/daily", params={"start": DAY, "end": DAY}).json()
        assert "WS-AIR-01" in {r["site_id"] for r in stations["rows"]}
        budget = api.get("/api/v1/air/good-days").json()["good_days"]
        assert budget["target_pct"] == 96.0 and budget["remaining_nongood_budget_days"] is not None
        quality = api.get(
            "/api/v1/quality/days",
            params={"start": DAY, "end": DAY, "feed": "air", "site_id": "WS-AIR-01"},
        ).json()["rows"]
        assert len(quality) == 1 and quality[0]["received_readings"] == 1440
        assert {"expectation": "pm25_ugm3_in_range", "readings": 1} in quality[0]["flagged"]
        csv_text = api.get(
            "/api/v1/quality/flagged",
            params={"start": DAY, "end": DAY, "format": "csv", "limit": 10000},
        )
        assert csv_text.headers["content-type"].startswith("text/csv")
        assert len(csv_text.text.strip().splitlines()) == 1 + flagged[0]
        depths = api.get("/api/v1/waterlogging/depths").json()["rows"]
        assert depths and depths[0]["depth_cm"] == 3.0
        ready = api.get("/ready").json()
        assert ready["ready"] and ready["last_load_at"] and ready["last_kpi_run_at"]
        assert ready["backend"] == settings.warehouse_target.kind

        # Bad input in every parameter: a 4xx with a message, or an empty result; never a 500.
        seen: list[tuple[str, str, int]] = []
        for path, params in paths.items():
            for name in params:
                for attack in ATTACKS:
                    url, query = url_for(path, params, (name, attack))
                    r = api.get(url, params=query)
                    seen.append((path, name, r.status_code))
                    answered_sanely(r, (path, name, attack))
        assert len(seen) > 600
        assert hostile_requests(server, api, paths, settings) > 400
        # The database was not touched by any of it.
        with db.reader(settings) as con:
            assert con.execute("select count(*) from kpi.pack_values").fetchone()[0] > 0
    assert "Traceback" not in server.log.read_text()


def test_reads_never_fail_while_a_load_and_a_kpi_run_write(
    settings: Settings, tmp_path: Path
) -> None:
    build(settings, DAY)
    nxt = DAY + timedelta(days=1)
    land_day(settings, nxt)
    endpoints = reader_endpoints(DAY, nxt)
    with (
        serving(settings, tmp_path) as server,
        server.client(limits=httpx.Limits(max_connections=64)) as api,
    ):
        reads = read_while_writing(
            api,
            endpoints,
            [
                ("load", lambda: load(settings, "serve-concurrent")),
                ("kpi", lambda: compute_day(settings, nxt)),
            ],
            readers=32,
        )
        assert not reads.writer_error, reads.writer_error
        assert not reads.failures, reads.failures[:10]
        print(
            f"reads: {len(reads.statuses)}, inside the load / KPI run: {reads.during}, "
            f"{reads.max_in_flight} at once"
        )
        assert sum(reads.during.values()) >= 500, (reads.during, len(reads.statuses))
        assert min(reads.during.values()) >= 20, reads.during  # both writers were overlapped
        assert reads.max_in_flight >= 16, reads.max_in_flight  # concurrent, not one by one

        # The new day shows up once the writers are done (file: the next snapshot).
        deadline = time.monotonic() + 30
        while api.get("/api/v1/pack/latest").json()["date"] != nxt.isoformat():
            assert time.monotonic() < deadline, "the API never showed the new day"
            time.sleep(0.5)
    if settings.warehouse_target.kind == "file":
        # Old snapshots are gone once nobody reads them (the server has stopped).
        left = list((settings.home / "serve").glob("snapshot-*.duckdb"))
        assert len(left) == 1, left
    assert "Traceback" not in server.log.read_text()


def test_serve_refuses_to_start_without_keys(settings: Settings) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "citypipe.cli", "serve", "--port", "1"],
        env=serve_env(None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "no API key configured" in out.stderr and "CITYPIPE_API_KEYS" in out.stderr
    assert "Traceback" not in out.stderr


def test_before_the_first_load_the_api_says_so(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path) as server, server.client() as api:
        assert api.get("/health").status_code == 200
        ready = api.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "warehouse" in ready.json()["error"]
        pack = api.get("/api/v1/pack/latest")
        assert pack.status_code == 503 and pack.headers["retry-after"] == "5"
        assert "error" in pack.json()
        # the alert store does not exist yet either: an empty list, not an error
        assert api.get("/api/v1/alerts/active").json() == {"count": 0, "alerts": []}
        # after a load, before any KPI run: ready (readable), with no KPI run yet
        land_day(settings, DAY)
        load(settings, "serve-first")
        deadline = time.monotonic() + 30
        while api.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the API never picked up the new warehouse"
            time.sleep(0.5)
        ready = api.get("/ready").json()
        assert ready["last_load_at"] and ready["last_kpi_run_at"] is None
        assert api.get("/api/v1/pack/latest").status_code == 503
        # once the KPIs ran, the same server serves them
        compute_day(settings, DAY)
        deadline = time.monotonic() + 30
        while api.get("/api/v1/pack/latest").status_code != 200:
            assert time.monotonic() < deadline, "the API never picked up the new warehouse"
            time.sleep(0.5)
        assert api.get("/api/v1/pack/latest").json()["date"] == DAY.isoformat()
    assert "Traceback" not in server.log.read_text()
