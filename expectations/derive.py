"""Derived columns computed before validation, vectorized (numpy / pyarrow compute).

GX 1.x has no direct form for "PM2.5 <= PM10 x (1 + tol)", "volume consistent with occupancy",
"same value N times in a row" or "jump above k x rolling median". Each becomes a derived column
(``dq_*``) checked by a plain GX expectation, so the failure still carries the expectation's name.
Run-length and spike windows are computed per device over the batch plus the device's recent
history from the warehouse, so a stuck sensor is caught across batch boundaries.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.arrow import group_codes
from common.catalogue import Catalogue
from expectations.reference import FeedRules


def group_keys(feed: str) -> list[str]:
    """Columns identifying one series: a device (and lane, for traffic)."""
    return ["site_id", "device_id", "lane"] if feed == "traffic" else ["site_id", "device_id"]


def series_columns(rules: FeedRules) -> list[str]:
    """Reading columns whose history the flat-line and spike checks need."""
    return sorted(set(rules.rule("flatline")) | set(rules.rule("spike")))


def history_lookback(rules: FeedRules, period_s: int) -> int:
    """Seconds of device history needed before a batch for the windowed checks."""
    n = [p.get("n", 0.0) for p in rules.rule("flatline").values()]
    w = [p.get("window", 0.0) for p in rules.rule("spike").values()]
    return int(max([0.0, *n, *w]) * period_s)


def device_known(table: pa.Table, catalogue: Catalogue, feed: str) -> np.ndarray:
    pairs = [f"{s.site_id}|{d}" for s in catalogue.by_feed(feed) for d in s.device_ids]
    joined = pc.binary_join_element_wise(
        pc.fill_null(table["site_id"], ""), pc.fill_null(table["device_id"], ""), "|"
    )
    return pc.is_in(joined, value_set=pa.array(pairs, pa.string())).to_numpy(zero_copy_only=False)


def _run_lengths(group: np.ndarray, values: np.ndarray, ignore_zero: bool) -> np.ndarray:
    """Position of each value in its run of identical values within a group (sorted input)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    same = np.zeros(n, dtype=bool)
    # NaN != NaN, so a missing value always starts a new run.
    same[1:] = (group[1:] == group[:-1]) & (values[1:] == values[:-1])
    idx = np.arange(n, dtype=np.int64)
    start = np.maximum.accumulate(np.where(same, 0, idx))
    run = idx - start + 1
    run[np.isnan(values)] = 0
    if ignore_zero:
        run[values == 0] = 0
    return run


def _series_start(group: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's series (input sorted by series)."""
    idx = np.arange(len(group), dtype=np.int64)
    starts = np.ones(len(group), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    return np.maximum.accumulate(np.where(starts, idx, 0))


def _no_spike(
    group: np.ndarray,
    values: np.ndarray,
    k: float,
    window: int,
    min_jump: float,
    *,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """False where a value is a spike: above k x the median of its series' previous ``window``
    readings and more than ``min_jump`` above it (median of the non-missing ones; at least
    max(3, window // 3) of them, else unknown). Input sorted by series, then time.

    A median is at least its window's minimum, which is at least the whole series' minimum:
    for k >= 0 a value not above k x that bound and min_jump above it cannot be a spike. Only
    the rows left (candidates, usually a few %) get an exact median; when many are left the
    window minimum (sparse table, O(n log w)) prunes them first. Same result as pandas'
    groupby-shift-rolling median (tested against it), about 10x faster.
    """
    min_periods = max(3, window // 3)
    if window < min_periods:
        raise ValueError(f"spike window {window} is shorter than the {min_periods} readings needed")
    n = len(values)
    ok = np.ones(n, dtype=bool)
    if n == 0:
        return ok
    if first is None:
        first = _series_start(group)
    finite = ~np.isnan(values)

    def prune(rows: np.ndarray, low: np.ndarray) -> np.ndarray:
        v = values[rows]
        with np.errstate(invalid="ignore"):
            return rows[(v - low > min_jump) & (v > k * low)]

    if k >= 0:
        vinf = np.where(finite, values, np.inf)
        bounds = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])
        series_min = np.minimum.reduceat(vinf, bounds)
        rows = prune(np.arange(n), np.repeat(series_min, np.diff(np.r_[bounds, n])))
        if len(rows) > n // 16:
            lo = np.maximum(rows - window, first[rows])
            rows = prune(rows, _window_min(vinf, lo, rows))
    else:  # the bound does not hold: every value is a candidate
        rows = np.flatnonzero(finite)
    lo = np.maximum(rows - window, first[rows])  # the window is rows lo .. row-1
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(finite, out=cum[1:])
    enough = (cum[rows] - cum[lo]) >= min_periods
    rows, lo = rows[enough], lo[enough]
    back = np.arange(1, window + 1, dtype=np.int64)
    for start in range(0, len(rows), 100_000):
        part, part_lo = rows[start : start + 100_000], lo[start : start + 100_000]
        pos = part[:, None] - back[None, :]
        win = np.where(pos >= part_lo[:, None], values[np.maximum(pos, 0)], np.nan)
        med = np.nanmedian(win, axis=1)
        v = values[part]
        with np.errstate(invalid="ignore"):
            ok[part] = ~((v > k * med) & (v - med > min_jump))
    return ok


def _window_min(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min(v[lo:hi]) per query (+inf for an empty range), by a sparse table of power-of-2 mins."""
    out = np.full(len(lo), np.inf)
    length = hi - lo
    has = length > 0
    level_of = np.zeros(len(lo), dtype=np.int64)
    level_of[has] = np.frexp(length[has].astype(np.float64))[1] - 1  # floor(log2(length))
    level = v  # level j: min over v[i : i + 2**j]
    for j in range(int(level_of.max()) + 1 if len(lo) else 0):
        if j:
            half = 1 << (j - 1)
            nxt = level.copy()
            np.minimum(level[:-half], level[half:], out=nxt[:-half])
            level = nxt
        q = np.flatnonzero(has & (level_of == j))
        if len(q):
            out[q] = np.minimum(level[lo[q]], level[hi[q] - (1 << j)])
    return out


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    """float64 with NaN for null (to_numpy maps float nulls to NaN; zero-copy without nulls)."""
    if col.type != pa.float64():
        col = pc.cast(col, pa.float64())
    return col.to_numpy(zero_copy_only=False)


def windowed_columns(
    feed: str, batch: pa.Table, history: pa.Table | None, rules: FeedRules
) -> dict[str, np.ndarray]:
    """Flat-line run lengths and spike tests per rule column, in the batch's row order.

    ``batch`` must have ``row_id`` = 0..n-1; ``history`` the same key and rule columns (no row_id).
    History rows with a key also present in the batch are ignored (the batch version wins).
    """
    cols = series_columns(rules)
    if not cols:
        return {}
    keys = group_keys(feed)
    need = [*keys, "observed_at", *cols]
    b = batch.select([*need, "row_id"])
    if history is not None and history.num_rows:
        h = history.select(need).cast(b.select(need).schema)
        h = h.append_column("row_id", pa.array(np.full(h.num_rows, -1, dtype=np.int64)))
        both = pa.concat_tables([h, b])
    else:
        both = b
    group = group_codes(both, keys)
    ts = pc.cast(both["observed_at"], pa.int64()).to_numpy(zero_copy_only=False)
    row_id = both["row_id"].to_numpy(zero_copy_only=False)
    is_batch = row_id >= 0
    # Sort by series and time; for equal keys history first, so it can be dropped below.
    order = np.lexsort((is_batch, ts, group))
    isb: np.ndarray | None = None  # which sorted rows are batch rows (None: all of them)
    if not is_batch.all():
        g, t, isb = group[order], ts[order], is_batch[order]
        shadowed = np.zeros(len(order), dtype=bool)
        shadowed[:-1] = ~isb[:-1] & (g[:-1] == g[1:]) & (t[:-1] == t[1:])
        if shadowed.any():
            order = order[~shadowed]
            isb = is_batch[order]
        del g, t
    del ts
    g = group[order]
    del group
    first = _series_start(g)
    rid = row_id[order]
    out_pos = rid if isb is None else rid[isb]  # batch rows, in sorted order -> their row_id
    result: dict[str, np.ndarray] = {}
    for col in cols:
        v = _floats(both[col])[order]
        flat = rules.rule("flatline").get(col)
        if flat:
            run = _run_lengths(g, v, bool(flat.get("ignore_zero", 0.0)))
            # int64, not int32: GX's pandas "between" is vectorized only for int64 / float64
            # columns (any other dtype goes through a Python function per value).
            arr = np.zeros(batch.num_rows, dtype=np.int64)
            arr[out_pos] = run if isb is None else run[isb]
            result[f"dq_flat_{col}"] = arr
        spike = rules.rule("spike").get(col)
        if spike:
            ok = _no_spike(
                g,
                v,
                spike.get("k", 5.0),
                int(spike.get("window", 30)),
                spike.get("min_jump", 0.0),
                first=first,
            )
            arr_ok = np.ones(batch.num_rows, dtype=bool)
            arr_ok[out_pos] = ok if isb is None else ok[isb]
            result[f"dq_nospike_{col}"] = arr_ok
    return result


def derived_columns(
    feed: str,
    batch: pa.Table,
    history: pa.Table | None,
    rules: FeedRules,
    catalogue: Catalogue,
    run_time: datetime,
) -> dict[str, np.ndarray]:
    """All ``dq_*`` columns for a batch (``row_id`` = 0..n-1), in batch row order."""
    out: dict[str, np.ndarray] = {}
    obs_us = pc.cast(batch["observed_at"], pa.int64()).to_numpy(zero_copy_only=False)
    run_us = int(run_time.timestamp() * 1_000_000)
    out["dq_future_s"] = (obs_us - run_us) / 1e6
    out["dq_device_known"] = device_known(batch, catalogue, feed)

    def num(col: str) -> np.ndarray:
        return batch[col].to_numpy(zero_copy_only=False).astype(np.float64)

    period = batch["period_s"].to_numpy(zero_copy_only=False).astype(np.float64)
    if feed == "air":
        tol = rules.rule("pm25_not_above_pm10").get("pm25_ugm3", {})
        pm25, pm10 = num("pm25_ugm3"), num("pm10_ugm3")
        limit = pm10 * (1 + tol.get("rel_tol", 0.1)) + tol.get("abs_tol_ugm3", 0.0)
        # Unknown when either is missing: not a failure of this check.
        out["dq_pm25_le_pm10"] = np.isnan(pm25) | np.isnan(pm10) | (pm25 <= limit)
    elif feed == "traffic":
        p = rules.rule("volume_occupancy_consistent").get("occupancy_pct", {})
        vol, occ = num("volume_veh"), num("occupancy_pct")
        zero_max = p.get("zero_volume_max_occ_pct", 2.0)
        queue_min = p.get("queue_min_occ_pct", 95.0)
        with np.errstate(invalid="ignore"):
            bad = ((vol > 0) & (occ == 0)) | ((vol == 0) & (occ > zero_max) & (occ < queue_min))
        out["dq_volume_occupancy_ok"] = ~bad
        with np.errstate(invalid="ignore", divide="ignore"):
            out["dq_volume_vph_lane"] = vol * 3600.0 / period
    elif feed == "waterlogging":
        with np.errstate(invalid="ignore", divide="ignore"):
            out["dq_rain_mmh"] = num("rain_mm") * 3600.0 / period
    out.update(windowed_columns(feed, batch, history, rules))
    return out
