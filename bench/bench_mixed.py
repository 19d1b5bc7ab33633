"""Mixed load: KPI-query latency in a separate reader process, idle and while a load runs, on
each warehouse backend.

    python -m bench.bench_mixed [--backends file,sqlite,postgres] [--days 7] [--idle-s 10]
                                [--chunks 6] [--chunk 25000] [--think-ms 100]
                                [--lock-timeout-s 60] [--keep-connection]

Per backend: a fresh warehouse gets ``--days`` of county data (bench_kpi's generators) and its
KPI pack, and ``--chunks`` synthetic air landing chunks of ``--chunk`` rows are deduplicated and
GX-validated (none of this timed). A reader process then runs the ``citypipe kpis`` query
(``read_pack``: open a reader through the factory, select a day's pack, close) in a loop with
``--think-ms`` between queries, like a dashboard: first alone for ``--idle-s``, then while this
process merges the chunks back to back, one writer transaction each (``merge_batch``, as the
DAG's load step does): the readers' worst case.

Reported: the reader's p50/p99/max latency idle and while loading, reads that failed (a lock
timeout on the file after ``--lock-timeout-s``, or any error), and the writer's seconds and
rows/s. On the single DuckDB file the reader waits behind the writer's lock: its latency while
loading is what blocking costs. Every lake read opens a new DuckDB instance, so it includes
loading (and signature-checking) the DuckLake and catalog extensions; ``--keep-connection``
measures the lake query alone (one connection per reader process; the file is then skipped,
since an open reader would shut its writer out). The reader warms up (the
first bound query imports pandas and pyarrow) before it says it is ready. PostgreSQL runs in a
database the bench creates and drops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.backends import (
    LABELS,
    backend_env,
    backend_settings,
    machine_load,
    parse_backends,
    pg_database,
)
from common.settings import REPO_ROOT, Settings

START = date(2026, 1, 1)
# Synthetic load rows start this many series steps after the generated days (no overlap).
LOAD_OFFSET = 10_000_000


def prepare(settings: Settings, days: int) -> date:
    """Migrate, generate ``days`` of data and compute their KPI pack; return the last day."""
    from bench.bench_kpi import generate
    from transforms.daily import compute_range
    from warehouse import db
    from warehouse.dims import load_dim_site

    end = START + timedelta(days=days - 1)
    with db.writer(settings) as con:
        load_dim_site(con, settings)
        generate(con, days, settings.timezone)
        compute_range(con, START, end, "bench-mixed", settings=settings)
    return end


def reader_main(day: date, out: Path, stop: Path, think_s: float, keep: bool) -> int:
    """The reader process: warm up, say ready, query until ``stop`` exists, write latencies.

    ``keep``: one lake connection for every query (each query is its own transaction, so it
    reads the latest snapshot) instead of ``read_pack``'s connection per query."""
    from common.settings import get_settings
    from transforms import SQL
    from transforms.cli import read_pack
    from warehouse.db import LockTimeout, connect

    settings = get_settings()
    duckdb.connect().execute("select ?::int", [1]).fetchall()
    con = connect(settings, read_only=True) if keep else None

    def query() -> bool:
        if con is None:
            return bool(read_pack(settings, day))
        params = {"day": day, "prefix": None}
        return bool(SQL.run(con, "queries/select_pack.sql", params).fetchall())

    query()
    print("ready", flush=True)
    reads: list[tuple[float, float, str]] = []
    while not stop.exists():
        t0 = time.time()
        p0 = time.perf_counter()
        try:
            outcome = "ok" if query() else "empty"
        except LockTimeout:
            outcome = "lock timeout"
        except Exception as exc:  # a failed read is a figure, not a crash
            outcome = f"error {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        reads.append((t0, time.perf_counter() - p0, outcome))
        time.sleep(think_s)
    if con is not None:
        con.close()
    out.write_text(json.dumps(reads))
    return 0


def validated_chunks(settings: Settings, chunks: int, chunk: int) -> list[tuple[Any, Any]]:
    """Synthetic air chunks, deduplicated and GX-validated before the measurement, so the load
    window is the writer committing back to back (the readers' worst case)."""
    from bench.bench_load import synth
    from common.catalogue import load_catalogue
    from expectations.reference import feed_rules
    from expectations.validate import validate_table
    from warehouse.batch import dedupe_batch

    catalogue = load_catalogue(settings.reference_dir, settings.city)
    rules = feed_rules(settings.reference_dir, "air", START)
    run_time = datetime(2035, 1, 1, tzinfo=UTC)
    out = []
    for i in range(chunks):
        batch = dedupe_batch(synth("air", chunk, LOAD_OFFSET + i * chunk, seed=i))
        v = validate_table(
            "air",
            batch,
            rules=rules,
            catalogue=catalogue,
            run_time=run_time,
            validation_run_id=f"mixed-{i}",
            future_tolerance_s=300,
        )
        out.append((batch, v))
    return out


def load_all(settings: Settings, chunks: list[tuple[Any, Any]]) -> dict[str, float]:
    """Merge each validated chunk in one writer transaction, as the DAG's load step does."""
    from common.sql import transaction
    from warehouse import db
    from warehouse.load import merge_batch

    rows = 0
    t0 = time.perf_counter()
    for batch, v in chunks:
        with db.writer(settings, migrate=False) as con, transaction(con):
            merge_batch(
                con,
                "air",
                batch,
                v.flagged,
                {
                    "feed": "air",
                    "validation_run_id": v.validation_run_id,
                    "load_run_id": "bench-mixed",
                    "loaded_at": datetime.now(UTC),
                },
            )
        rows += batch.num_rows
    return {"commits": len(chunks), "rows": rows, "write_s": time.perf_counter() - t0}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summarize(reads: list[tuple[float, float, str]], since: float, until: float) -> dict[str, Any]:
    window = [r for r in reads if since <= r[0] < until]
    ok = [d for _, d, o in window if o in ("ok", "empty")]
    failed: dict[str, int] = {}
    for _, _, o in window:
        if o not in ("ok", "empty"):
            failed[o] = failed.get(o, 0) + 1
    return {
        "n": len(window),
        "p50_ms": percentile(ok, 50) * 1000,
        "p99_ms": percentile(ok, 99) * 1000,
        "max_ms": max((d for _, d, _ in window), default=float("nan")) * 1000,
        "failed": failed,
    }


def run_backend(
    settings: Settings, args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    day = prepare(settings, args.days)
    chunks = validated_chunks(settings, args.chunks, args.chunk)
    out = workdir / "reads.json"
    stop = workdir / "stop"
    env = backend_env(settings)
    env["CITYPIPE_LOCK_TIMEOUT_S"] = str(args.lock_timeout_s)
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_mixed",
        "--reader",
        day.isoformat(),
        str(out),
        str(stop),
        str(args.think_ms / 1000),
        "keep" if args.keep_connection else "connect",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"reader did not start (exit {proc.wait()})")
        t_idle = time.time()
        time.sleep(args.idle_s)
        t_load = time.time()
        writer = load_all(settings, chunks)
        t_done = time.time()
    finally:
        stop.touch()
        # A reader stuck behind a lock finishes its read (or times out) before it stops.
        proc.wait(timeout=args.lock_timeout_s + 120)
    reads = json.loads(out.read_text())
    return summarize(reads, t_idle, t_load), summarize(reads, t_load, t_done), writer


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--reader":
        _, _, day, out, stop, think, mode = sys.argv
        return reader_main(
            date.fromisoformat(day), Path(out), Path(stop), float(think), mode == "keep"
        )
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="file,sqlite,postgres", help="which warehouses")
    p.add_argument("--days", type=int, default=7, help="days of data generated before")
    p.add_argument("--idle-s", type=float, default=10.0, help="reader alone, seconds")
    p.add_argument("--chunks", type=int, default=6, help="load transactions, back to back")
    p.add_argument("--chunk", type=int, default=25_000, help="rows per load transaction")
    p.add_argument("--think-ms", type=float, default=100.0, help="pause between reads")
    p.add_argument("--lock-timeout-s", type=float, default=60.0, help="reader gives up after")
    p.add_argument(
        "--keep-connection",
        action="store_true",
        help="lake readers keep one connection (the query alone; the file is skipped)",
    )
    args = p.parse_args(argv)
    kinds = parse_backends(args.backends)
    if args.keep_connection and "file" in kinds:
        # An open reader on the file would hold DuckDB's file lock and shut the writer out.
        print("file skipped with --keep-connection: an open reader would block the writer")
        kinds.remove("file")
    print(f"machine before: {machine_load()}", flush=True)
    rows: list[str] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as tmp, pg_database() as (pg, why):
        for kind in kinds:
            if kind == "postgres" and pg is None:
                rows.append(f"{LABELS[kind]:<12} skipped: {why}")
                print(rows[-1], flush=True)
                continue
            home = Path(tmp) / kind
            settings = backend_settings(kind, home, pg)
            try:
                idle, busy, w = run_backend(settings, args, home)
            except duckdb.Error as exc:
                failed = True
                rows.append(f"{LABELS[kind]:<12} FAILED: {str(exc).splitlines()[0][:160]}")
                print(rows[-1], flush=True)
                continue
            rows.append(format_row(kind, idle, busy, w))
            print(f"[{LABELS[kind]}] done; {machine_load()}", flush=True)
    print()
    what = (
        "select a day's pack, kept connection"
        if args.keep_connection
        else ("connect, select a day's pack")
    )
    print(
        f"reader: the citypipe kpis query ({what}) every {args.think_ms:g} ms;"
        f" writer: {args.chunks} x {args.chunk:,}-row air chunks back to back; {machine_load()}"
    )
    print(HEADER)
    for r in rows:
        print(r)
    return 1 if failed else 0


HEADER = (
    f"{'backend':<12} {'idle n':>6} {'p50 ms':>7} {'p99 ms':>7} {'load n':>6} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'max ms':>8} {'load s':>7} {'rows/s':>8}  failed reads (while loading)"
)


def format_row(kind: str, idle: dict[str, Any], busy: dict[str, Any], w: dict[str, float]) -> str:
    failed = ", ".join(f"{n} {o}" for o, n in busy["failed"].items()) or "0"
    rate = w["rows"] / w["write_s"] if w["write_s"] else float("nan")
    return (
        f"{LABELS[kind]:<12} {idle['n']:>6} {idle['p50_ms']:>7.0f} {idle['p99_ms']:>7.0f} "
        f"{busy['n']:>6} {busy['p50_ms']:>7.0f} {busy['p99_ms']:>7.0f} {busy['max_ms']:>8.0f} "
        f"{w['write_s']:>7.1f} {rate:>8,.0f}  {failed}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
