"""API readers while writers work: many client threads read the real server (`citypipe serve`)
while loads and KPI runs write the warehouse. Shared by the serving test
(tests/integration/serving/test_serve_api.py) and the reliability case
(tests/reliability/test_rel_readers.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx


@dataclass
class Reads:
    """What the readers saw. A read counts for a phase ("load", "kpi", ...) when it started and
    ended inside that phase (the same writer step, not merely the same kind)."""

    statuses: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    during: dict[str, int] = field(default_factory=dict)  # phase kind -> reads inside it
    max_in_flight: int = 0
    writer_error: list[BaseException] = field(default_factory=list)
    wall_s: float = 0.0

    def latency_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1, nearest rank) of the read latencies, in ms."""
        xs = sorted(self.latencies_s)
        if not xs:
            return 0.0
        return 1000 * xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


def read_while_writing(
    api: httpx.Client,
    endpoints: Sequence[tuple[str, dict[str, Any]]],
    phases: Sequence[tuple[str, Callable[[], None]]],
    *,
    readers: int = 32,
    min_reads_each: int = 20,
    head_start_s: float = 0.5,
) -> Reads:
    """``readers`` threads cycle through ``endpoints`` until every writer phase (kind, step) has
    run, one after the other, in a writer thread; each reader makes at least ``min_reads_each``
    reads. Every non-200 answer or transport error is a failure."""
    out = Reads(during={kind: 0 for kind, _ in phases})
    done = threading.Event()
    # The writer step at work: (serial number, kind); serial so that two loads are two phases.
    phase: list[tuple[int, str] | None] = [None]
    in_flight = [0]
    lock = threading.Lock()

    def write() -> None:
        try:
            for i, (kind, step) in enumerate(phases):
                phase[0] = (i, kind)
                step()
        except BaseException as exc:  # reported by the caller
            out.writer_error.append(exc)
        finally:
            phase[0] = None
            done.set()

    def reader(i: int) -> None:
        n = 0
        while not done.is_set() or n < min_reads_each:
            path, params = endpoints[(i + n) % len(endpoints)]
            n += 1
            began = phase[0]
            with lock:
                in_flight[0] += 1
                out.max_in_flight = max(out.max_in_flight, in_flight[0])
            t0 = time.perf_counter()
            try:
                r = api.get(path, params=params)
                took = time.perf_counter() - t0
                with lock:
                    out.statuses.append(r.status_code)
                    out.latencies_s.append(took)
                    if began is not None and phase[0] == began:
                        out.during[began[1]] += 1
                    if r.status_code != 200:
                        out.failures.append(f"{path}: {r.status_code} {r.text[:300]}")
            except httpx.HTTPError as exc:
                with lock:
                    out.failures.append(f"{path}: {exc!r}")
            finally:
                with lock:
                    in_flight[0] -= 1

    started = time.perf_counter()
    writer = threading.Thread(target=write)
    with ThreadPoolExecutor(readers) as pool:
        futures = [pool.submit(reader, i) for i in range(readers)]
        time.sleep(head_start_s)
        writer.start()
        for f in futures:
            f.result()
    writer.join()
    out.wall_s = time.perf_counter() - started
    return out


def reader_endpoints(first: date, last: date) -> list[tuple[str, dict[str, Any]]]:
    """The reads a dashboard makes over ``first``..``last``: KPIs, stations, pack, quality, TPI."""
    return [
        ("/api/v1/kpis/air", {"start": first, "end": last}),
        ("/api/v1/air/stations/daily", {"start": first, "end": last}),
        ("/api/v1/pack/latest", {}),
        ("/api/v1/quality/days", {"start": first, "end": last, "limit": 50}),
        ("/api/v1/traffic/tpi", {"start": first, "end": last}),
    ]
