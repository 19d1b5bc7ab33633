"""Validate+load throughput of each warehouse backend next to a bare DuckDB insert of the same
Arrow data.

    python -m bench.bench_load [--rows 200000] [--feeds air,traffic] [--chunk 100000]
                               [--backends file,sqlite,postgres]

For each feed and size: synthetic landing rows (about 1 % implausible) are deduplicated,
GX-validated (COMPLETE results) and merged into a fresh warehouse of each backend in chunks of
``--chunk`` rows, each chunk one transaction, exactly as the DAG's load step does. The same
chunks are then inserted bare into an empty table of another DuckDB file. Reported per backend:
rows/s, its ratio to the bare insert and to the single file (``x file``; the issue's bar for
the embedded default is a lake within 1.5x of the file), and peak RSS above the baseline
against one chunk's Arrow size (target <= 3x). PostgreSQL runs in a database the bench creates
and drops (bench/backends.py); without a server its rows are skipped with the reason. The
defaults take a few minutes on 2 cores; the issue's sizes are ``--rows 1000000,10000000
--chunk 1000000``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import psutil
import pyarrow as pa

from bench.backends import LABELS, backend_settings, machine_load, parse_backends, pg_database
from common.catalogue import load_catalogue
from common.settings import Settings, get_settings
from common.sql import transaction
from expectations.derive import history_lookback  # noqa: F401  (imported for warm-up parity)
from expectations.reference import feed_rules
from expectations.validate import validate_table
from ingestion.schema import landing_schema
from warehouse import db
from warehouse.batch import dedupe_batch
from warehouse.load import merge_batch


class PeakRss:
    """Sample this process's RSS every 10 ms; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def synth(feed: str, n: int, offset: int, seed: int) -> pa.Table:
    """n landing rows of one feed, catalogue sites round-robin, ~1 % implausible values."""
    rng = np.random.default_rng(seed)
    s = get_settings()
    sites = [x for x in load_catalogue(s.reference_dir, s.city).by_feed(feed)]
    per_series = [
        (x.site_id, x.device_ids[0], lane)
        for x in sites
        for lane in range(1, (x.lanes if feed == "traffic" else 1) + 1)
    ]
    k = len(per_series)
    idx = (np.arange(n) + offset) % k
    step = (np.arange(n) + offset) // k
    period = 60 if feed == "air" else 300
    t0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    observed = t0 + step * period * 1_000_000
    site = np.array([p[0] for p in per_series], dtype=object)[idx]
    dev = np.array([p[1] for p in per_series], dtype=object)[idx]
    cols: dict[str, object] = {
        "site_id": site,
        "device_id": dev,
        "lane": (np.array([p[2] for p in per_series])[idx] if feed == "traffic" else None),
        "direction": None,
        "seq": step + 1,
        "observed_at": observed,
        "period_s": np.full(n, period, dtype=np.int32),
        "flags": np.where(rng.random(n) < 0.002, "maintenance", ""),
        "received_at": observed + 5_000_000,
        "topic": np.full(n, f"city/wushan/{feed}/x", dtype=object),
        "content_hash": np.char.mod("%016x", rng.integers(0, 2**62, n)),
        "local_date": ((observed // 1_000_000 + 8 * 3600) // 86400).astype(np.int32),
    }
    if feed == "air":
        pm25 = rng.gamma(3, 12, n)
        pm25[rng.random(n) < 0.005] = -3.0
        cols.update(
            pm25_ugm3=pm25,
            pm10_ugm3=pm25 * 1.6 + rng.random(n),
            so2_ugm3=rng.gamma(2, 4, n),
            no2_ugm3=rng.gamma(3, 8, n),
            co_mgm3=rng.gamma(3, 0.25, n),
            o3_ugm3=rng.gamma(4, 15, n),
            temp_c=rng.normal(15, 8, n),
            rh_pct=rng.uniform(30, 100, n),
            wind_ms=rng.gamma(2, 1, n),
            wind_deg=rng.uniform(0, 360, n),
            pressure_hpa=rng.normal(990, 8, n),
        )
    else:
        vol = rng.poisson(40, n).astype(np.float64)
        occ = vol * 0.2 + rng.random(n)
        occ[rng.random(n) < 0.005] = 130.0
        cols.update(volume_veh=vol, speed_kmh=rng.uniform(15, 60, n), occupancy_pct=occ)
    schema = landing_schema(feed)
    arrays = []
    for f in schema:
        v = cols.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        elif f.name in ("observed_at", "received_at"):
            arrays.append(pa.array(v, pa.int64()).cast(f.type))
        elif f.name == "local_date":
            arrays.append(pa.array(v, pa.int32()).cast(pa.date32()))
        else:
            arrays.append(pa.array(v, f.type))
    t = pa.Table.from_arrays(arrays, schema=schema)
    n_ = t.num_rows
    t = t.append_column(
        "source_file", pa.array(np.full(n_, "bench.parquet", dtype=object), pa.string())
    )
    return t.append_column(
        "source_sha256", pa.array(np.full(n_, f"bench{seed}", dtype=object), pa.string())
    )


def bench(settings: Settings, feed: str, total: int, chunk: int) -> dict[str, float]:
    """Validate+load ``total`` rows in chunks into the (fresh) warehouse of ``settings``."""
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    rules = feed_rules(settings.reference_dir, feed, datetime(2026, 1, 1).date())
    # Far enough ahead that 10 M synthetic minutes (about 19 months per device) are all past.
    run_time = datetime(2035, 1, 1, tzinfo=UTC)
    with db.writer(settings) as con:  # migrate outside the timing
        pass
    chunks = [(i, min(chunk, total - i)) for i in range(0, total, chunk)]
    t_validate = t_load = 0.0
    arrow_bytes = 0
    peak_delta = 0
    flagged = 0
    proc = psutil.Process()
    for n_chunk, (off, n) in enumerate(chunks):
        raw = synth(feed, n, off, seed=n_chunk)
        arrow_bytes = max(arrow_bytes, raw.nbytes)
        # RSS above what the process holds once the chunk's Arrow table exists.
        base = proc.memory_info().rss
        with PeakRss() as peak:
            t0 = time.perf_counter()
            batch = dedupe_batch(raw)
            v = validate_table(
                feed,
                batch,
                rules=rules,
                catalogue=catalogue,
                run_time=run_time,
                validation_run_id=f"bench-{n_chunk}",
                future_tolerance_s=300,
            )
            t1 = time.perf_counter()
            with db.writer(settings, migrate=False) as con, transaction(con):
                counts = merge_batch(
                    con,
                    feed,
                    batch,
                    v.flagged,
                    {
                        "feed": feed,
                        "validation_run_id": v.validation_run_id,
                        "load_run_id": "bench",
                        "loaded_at": datetime.now(UTC),
                    },
                )
            t2 = time.perf_counter()
        peak_delta = max(peak_delta, peak.peak - base)
        flagged += counts["flagged"]
        t_validate += t1 - t0
        t_load += t2 - t1
        del raw, batch, v
    total_s = t_validate + t_load
    return {
        "rows": total,
        "validate_s": t_validate,
        "load_s": t_load,
        "rows_per_s": total / total_s,
        "peak_rss_delta_mb": peak_delta / 1e6,
        "chunk_arrow_mb": arrow_bytes / 1e6,
        "mem_ratio": peak_delta / arrow_bytes if arrow_bytes else float("nan"),
        "flagged": flagged,
    }


def bare_rows_per_s(feed: str, total: int, chunk: int, workdir: Path) -> float:
    """A bare insert of the same chunks into a plain DuckDB file (generation not timed)."""
    chunks = [(i, min(chunk, total - i)) for i in range(0, total, chunk)]
    bare_db = workdir / f"bare-{feed}-{total}.duckdb"
    con = duckdb.connect(str(bare_db))
    t_bare = 0.0
    for n_chunk, (off, n) in enumerate(chunks):
        raw = synth(feed, n, off, seed=n_chunk)
        t0 = time.perf_counter()
        if n_chunk == 0:
            con.execute("create table bare as select * from raw")
        else:
            con.execute("insert into bare select * from raw")
        t_bare += time.perf_counter() - t0
        del raw
    con.close()
    bare_db.unlink()
    return total / t_bare


HEADER = (
    f"{'feed':<8} {'rows':>10} {'backend':<12} {'validate s':>10} {'load s':>8} {'rows/s':>10} "
    f"{'bare rows/s':>11} {'x bare':>6} {'x file':>6} {'peak MB':>8} {'chunk MB':>8} "
    f"{'mem x':>6} {'flagged':>8}"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="200000", help="comma-separated sizes")
    p.add_argument("--feeds", default="air,traffic")
    p.add_argument("--chunk", type=int, default=100_000, help="rows per validate+load batch")
    p.add_argument("--backends", default="file,sqlite,postgres", help="which warehouses")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.rows.split(",")]
    kinds = parse_backends(args.backends)
    # Warm up GX (import and first context) and DuckDB's first bound parameter (it imports
    # pandas and pyarrow) outside the timings.
    duckdb.connect().execute("select ?::int", [1]).fetchall()
    dedupe_batch(synth("air", 1000, 0, 0))
    validate_table(
        "air",
        dedupe_batch(synth("air", 1000, 0, 0)),
        rules=feed_rules(get_settings().reference_dir, "air", datetime(2026, 1, 1).date()),
        catalogue=load_catalogue(get_settings().reference_dir, get_settings().city),
        run_time=datetime(2027, 1, 1, tzinfo=UTC),
        validation_run_id="warm",
        future_tolerance_s=300,
    )
    print(f"machine before: {machine_load()}", flush=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, pg_database() as (pg, why):
        if "postgres" in kinds and pg is None:
            print(f"lake-pg skipped: {why}", flush=True)
        print(HEADER, flush=True)
        for feed in args.feeds.split(","):
            for n in sizes:
                chunk = min(args.chunk, n)
                bare = bare_rows_per_s(feed, n, chunk, Path(tmp))
                file_rate: float | None = None
                for kind in kinds:
                    if kind == "postgres" and pg is None:
                        continue
                    home = Path(tmp) / f"{feed}-{n}-{kind}"
                    try:
                        r = bench(backend_settings(kind, home, pg), feed, n, chunk)
                    except duckdb.Error as exc:
                        # One backend failing must not hide the others' figures.
                        failed += 1
                        first = str(exc).splitlines()[0][:160]
                        print(f"{feed:<8} {n:>10,} {LABELS[kind]:<12} FAILED: {first}", flush=True)
                        continue
                    if kind == "file":
                        file_rate = r["rows_per_s"]
                    print(format_row(feed, n, kind, r, bare, file_rate), flush=True)
    print(f"machine after: {machine_load()}")
    return 1 if failed else 0


def format_row(
    feed: str, n: int, kind: str, r: dict[str, float], bare: float, file_rate: float | None
) -> str:
    x_file = f"{r['rows_per_s'] / file_rate:>6.2f}" if file_rate else f"{'-':>6}"
    return (
        f"{feed:<8} {n:>10,} {LABELS[kind]:<12} {r['validate_s']:>10.2f} {r['load_s']:>8.2f} "
        f"{r['rows_per_s']:>10,.0f} {bare:>11,.0f} {r['rows_per_s'] / bare:>6.2f} {x_file} "
        f"{r['peak_rss_delta_mb']:>8.0f} {r['chunk_arrow_mb']:>8.0f} {r['mem_ratio']:>6.2f} "
        f"{r['flagged']:>8,}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
