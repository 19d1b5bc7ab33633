"""Readers under load (issue 13): API readers in many client threads read the real server
(`citypipe serve`, a subprocess) while loads (the ingest DAG's load chain) and KPI runs (the real
`citypipe run citypipe_daily_kpis --date D`, a subprocess, at the full scale; the DAG's plan and
compute steps in-process at the CI size) write the warehouse. Zero failed
requests; the figures are reads in total, inside a load and inside a KPI run, the most at once
and the latency. The file backend at both scales; the SQLite lake at the full scale."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from support.rel_late import kpi_run, kpi_steps
from support.rel_readers import read_while_writing, reader_endpoints
from support.reliability import SCALE, Figures, at_scale
from support.serving_helpers import build, land_day, load, serving

from common.settings import Settings

pytestmark = pytest.mark.backends("file", "sqlite")

FIRST = date(2026, 11, 21)


def test_api_reads_never_fail_during_loads_and_kpi_runs(
    settings: Settings, tmp_path: Path, figures: Figures
) -> None:
    kind = settings.warehouse_target.kind
    if kind != "file" and SCALE == "ci":
        pytest.skip("the SQLite lake runs at the full scale (make test-reliability)")
    days = at_scale(ci=1, full=3)  # new days, each landed, loaded and KPI-computed under reads
    readers = at_scale(ci=16, full=64)
    build(settings, FIRST)
    new_days = [FIRST + timedelta(days=i + 1) for i in range(days)]

    def land_and_load(day: date) -> None:
        land_day(settings, day)  # what the ingest service writes for a day, then its load
        load(settings, f"rel-readers-{day}")

    phases = []
    for day in new_days:
        phases.append(("load", lambda day=day: land_and_load(day)))
        if SCALE == "full":
            phases.append(("kpi", lambda day=day: kpi_run(day)))
        else:
            phases.append(("kpi", lambda day=day: kpi_steps(settings, day, f"rel-readers {day}")))
    with (
        serving(settings, tmp_path) as server,
        server.client(limits=httpx.Limits(max_connections=readers * 2)) as api,
    ):
        reads = read_while_writing(
            api, reader_endpoints(FIRST, new_days[-1]), phases, readers=readers
        )
        # Figures first: a failing run still shows what it measured.
        how = "citypipe run" if SCALE == "full" else "plan+compute steps"
        note = f"{kind} backend, {readers} reader threads, {days} load(s) + KPI run(s) ({how})"
        figures.add("reads total", len(reads.statuses), "requests", note)
        figures.add("reads during a load", reads.during["load"], "requests")
        figures.add("reads during a KPI run", reads.during["kpi"], "requests")
        figures.add("reads at once (max)", reads.max_in_flight, "requests")
        figures.add("failed reads", len(reads.failures), "requests")
        figures.add("read latency p50", reads.latency_ms(0.50), "ms")
        figures.add("read latency p95", reads.latency_ms(0.95), "ms")
        figures.add("read latency max", reads.latency_ms(1.0), "ms")
        figures.add("wall time", reads.wall_s, "s", "readers start to last read")
        assert not reads.writer_error, reads.writer_error
        assert not reads.failures, reads.failures[:10]
        # The reads overlapped every kind of writer, concurrently (else the case proves nothing).
        assert min(reads.during.values()) >= 20, reads.during
        assert reads.max_in_flight >= readers // 2, reads.max_in_flight
        # And the readers see the writers' result once they are done (file: the next snapshot).
        deadline = time.monotonic() + 60
        while api.get("/api/v1/pack/latest").json()["date"] != new_days[-1].isoformat():
            assert time.monotonic() < deadline, "the API never showed the new day"
            time.sleep(0.5)
    assert "Traceback" not in server.log.read_text()
