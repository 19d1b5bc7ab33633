"""Per-device ``seq`` anomalies (gap, reset, repeat) in ``dq.seq_gaps``, kept by the load.

The contract's ``seq`` counts a device's readings (+1 each), so a jump forward means readings
never reached the warehouse (docs/feeds.md). After each feed batch is merged, the part of every
touched device's series that the batch can have changed is recomputed from ``core`` in the
same transaction (``sql/dq/recompute_seq_gaps.sql``): gaps across batches, late readings that fill a
gap, and reruns all come out of the stored readings, not out of the batch alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import SQL

# How far before the batch the last stored reading of a device is looked for first. Only a
# speed knob (zone maps skip older row groups): a device silent for longer is found by a
# second, full look-back, so the result does not depend on it.
NEAR_LOOKBACK = timedelta(days=2)


def record_seq_anomalies(
    con: duckdb.DuckDBPyConnection, feed: str, batch: pa.Table, params: dict[str, Any]
) -> int:
    """Recompute ``dq.seq_gaps`` for the devices and time span of a merged batch.

    ``batch`` holds the batch's readings (already in ``core``); ``params`` the load's
    ``feed``, ``load_run_id``, ``validation_run_id`` and ``loaded_at``. Runs inside the
    caller's transaction. Returns how many anomalies the recomputed part now holds.
    """
    if batch.num_rows == 0:
        return 0
    mm = pc.min_max(batch["observed_at"]).as_py()
    # Bounded at year 1: a reading dated 0001-01-01 must not overflow the look-back.
    near = min(NEAR_LOOKBACK, mm["min"] - datetime.min.replace(tzinfo=UTC))
    con.register("seq_batch", batch.select(["site_id", "device_id", "observed_at"]))
    try:
        SQL.run(
            con,
            "dq/recompute_seq_gaps.sql",
            {
                **params,
                "min_obs": mm["min"],
                "max_obs": mm["max"],
                "near_since": mm["min"] - near,
            },
            feed=feed,
        )
    finally:
        con.unregister("seq_batch")
    # fetchall, not fetchone: an unfinished result blocks the connection's next register().
    return int(SQL.run(con, "dq/count_seq_anomalies_found.sql").fetchall()[0][0])
