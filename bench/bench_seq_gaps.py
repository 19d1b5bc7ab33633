"""Cost of the load's seq check (``warehouse.seq_gaps``) next to the merge it follows.

    python -m bench.bench_seq_gaps [--feed air|traffic] [--rows 10000000]

Synthetic landing rows (``bench.bench_load.synth``; traffic seq rewritten to one counter per
detector shared by its lanes, as the contract says) are merged into a fresh warehouse in 1 M-row
batches, each followed by ``record_seq_anomalies`` in the same transaction; then one DAG-sized
batch (10 minutes of every device) is checked five times against the full core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench.bench_load import synth
from common.catalogue import load_catalogue
from common.settings import get_settings
from common.sql import transaction
from expectations.validate import FLAGGED_SCHEMA
from warehouse import db
from warehouse.batch import dedupe_batch
from warehouse.load import merge_batch
from warehouse.seq_gaps import record_seq_anomalies

CHUNK = 1_000_000
# No GX flags: the merge and the seq check only (the flagged table as validate_table makes it).
NO_FLAGS = FLAGGED_SCHEMA.empty_table()


def _rows(feed: str, n: int, offset: int, seed: int) -> pa.Table:
    t = synth(feed, n, offset, seed)
    if feed != "traffic":
        return t
    s = get_settings()
    lanes = {x.site_id: x.lanes for x in load_catalogue(s.reference_dir, s.city).by_feed("traffic")}
    k = pa.array([lanes[v] for v in t["site_id"].to_pylist()], pa.int64())
    # synth counts per lane; the contract's counter is per detector: step * lanes + lane
    seq = pc.add(pc.multiply(pc.subtract(t["seq"], 1), k), pc.cast(t["lane"], pa.int64()))
    return t.set_column(t.schema.get_field_index("seq"), "seq", seq)


def _params(feed: str, i: int) -> dict[str, Any]:
    return {
        "feed": feed,
        "validation_run_id": f"v{i}",
        "load_run_id": f"r{i}",
        "loaded_at": datetime.now(UTC),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feed", default="air", choices=["air", "traffic"])
    p.add_argument("--rows", type=int, default=10_000_000)
    args = p.parse_args(argv)
    feed, total = args.feed, args.rows
    with tempfile.TemporaryDirectory(prefix="bench-seq-") as tmp:
        settings = get_settings(home=Path(tmp))
        with db.writer(settings):  # migrate outside the timing
            pass
        for i, off in enumerate(range(0, total, CHUNK)):
            n = min(CHUNK, total - off)
            batch = dedupe_batch(_rows(feed, n, off, seed=i))
            with db.writer(settings, migrate=False) as con, transaction(con):
                t0 = time.perf_counter()
                merge_batch(con, feed, batch, NO_FLAGS, _params(feed, i))
                t1 = time.perf_counter()
                found = record_seq_anomalies(con, feed, batch, _params(feed, i))
                t2 = time.perf_counter()
            print(
                f"{feed} batch {i}: {n:,} rows onto {off:,} stored: merge {t1 - t0:.2f} s, "
                f"seq check {t2 - t1:.3f} s, anomalies {found}",
                flush=True,
            )
        devices = 12 if feed == "air" else 75  # readings per minute (air) / per 5 min (lanes)
        small = dedupe_batch(_rows(feed, devices * (10 if feed == "air" else 2), total, 99))
        with db.writer(settings, migrate=False) as con, transaction(con):
            merge_batch(con, feed, small, NO_FLAGS, _params(feed, 99))
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                found = record_seq_anomalies(con, feed, small, _params(feed, 99))
                times.append(time.perf_counter() - t0)
        print(
            f"{feed} DAG-sized batch of {small.num_rows} rows onto {total:,} stored: seq check "
            f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms, anomalies {found}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
