"""Run a feed's GX suite on one batch and turn the result into flagged readings.

Row-level failures come from ``result_format`` COMPLETE with ``unexpected_index_column_names``
= ``["row_id"]``: each failing reading becomes a row (row_id, expectation name, column, observed
value, and what it invalidates: the whole reading or some of its values) of the ``flagged``
Arrow table, which the loader joins back onto the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from common.catalogue import Catalogue
from expectations.derive import derived_columns
from expectations.reference import FeedRules
from expectations.suites import (
    EXPECTED_SITES_PARAM,
    SUITE_VERSION_META,
    Spec,
    build_suite,
    specs,
    suite_name,
    suite_version,
)

FLAGGED_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.int64()),
        pa.field("expectation", pa.string()),
        pa.field("column_name", pa.string()),
        pa.field("observed_value", pa.float64()),
        pa.field("observed_text", pa.string()),
        # "reading": the whole reading is invalid; "value": only invalidated_columns are
        # (expectations.suites.Spec.scope / invalidates)
        pa.field("scope", pa.string()),
        pa.field("invalidated_columns", pa.list_(pa.string())),
    ]
)
# Large per-row lists are dropped from the copy kept for Data Docs (the flagged table has them).
_BIG_KEYS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")
_TEXT_COLUMNS = {"site_id", "device_id", "flags", "direction"}


@dataclass
class Validation:
    validation_run_id: str
    feed: str
    suite_name: str
    rows: int
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]]
    flagged: pa.Table
    expected_sites: list[str]
    started_at: datetime
    ended_at: datetime
    gx_result: Any = field(default=None, repr=False)
    specs: list[Spec] = field(default_factory=list, repr=False)
    # sha256 of the expectations and rule parameters used (expectations.suites.suite_version)
    suite_version: str = ""

    @property
    def flagged_by_expectation(self) -> dict[str, int]:
        return {r["name"]: r["unexpected_count"] for r in self.results if r["unexpected_count"]}


def with_scope(flags: pa.Table) -> pa.Table:
    """Flags parked by a validation before per-value validity (no scope columns) keep the rule
    they were made under: each failure invalidates its reading."""
    if "scope" in flags.column_names:
        return flags
    n = flags.num_rows
    return flags.append_column(
        FLAGGED_SCHEMA.field("scope"), pa.repeat(pa.scalar("reading"), n)
    ).append_column(
        FLAGGED_SCHEMA.field("invalidated_columns"),
        pa.repeat(pa.scalar([], pa.list_(pa.string())), n),
    )


def quiet_gx() -> None:
    """No usage statistics and no progress bars, whoever imports GX first."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _no_batch_fingerprint() -> None:
    """Skip GX's md5 fingerprint of every pandas batch under 1 GB.

    ``PandasExecutionEngine.get_batch_data_and_markers`` hashes the whole dataframe
    (``pd.util.hash_pandas_object``, ~0.2 s per million rows) only to write a
    ``pandas_data_fingerprint`` batch marker; nothing in validation reads it. Our batches are
    identified by their files' sha256 in ``meta.load_ledger``. GX reads the module constant at
    call time, so lowering it turns the marker off.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def _context() -> Any:
    quiet_gx()
    _no_batch_fingerprint()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # A fresh in-memory context per batch: its result store would otherwise keep every
    # COMPLETE result (with per-row lists) for the life of the process. No temporary docs
    # site (GX's default makes a temp dir per context); Data Docs live in the file context.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _frame(batch: pa.Table, derived: dict[str, np.ndarray], used: set[str]) -> pd.DataFrame:
    """The dataframe GX validates: only the columns an expectation reads, index = row id.

    With the row id as index and exclude_unexpected_values, GX returns the failing row ids as
    one list per expectation instead of a dict per failing row. Built column by column from
    Arrow (numeric columns without nulls zero-copy) with no consolidation copy.
    """
    cols: dict[str, Any] = {
        name: batch[name].to_pandas(split_blocks=True)
        for name in batch.column_names
        if name in used and name != "row_id"
    }
    cols.update({name: arr for name, arr in derived.items() if name in used})
    frame = pd.DataFrame(cols, copy=False)
    frame.index = pd.Index(batch["row_id"].to_numpy(), name="row_id")
    return frame


def expected_sites(catalogue: Catalogue, feed: str, batch: pa.Table) -> list[str]:
    """Sites that should appear in a batch spanning its observed_at range: period <= span / 2."""
    if batch.num_rows == 0:
        return []
    import pyarrow.compute as pc

    mm = pc.min_max(pc.cast(batch["observed_at"], pa.int64())).as_py()
    span_s = (mm["max"] - mm["min"]) / 1e6
    return sorted(s.site_id for s in catalogue.by_feed(feed) if s.period_s * 2 <= span_s)


def validate_table(
    feed: str,
    batch: pa.Table,
    *,
    rules: FeedRules,
    catalogue: Catalogue,
    run_time: datetime,
    validation_run_id: str,
    future_tolerance_s: int,
    history: pa.Table | None = None,
) -> Validation:
    """Validate ``batch`` (a landing-schema table with ``row_id`` = 0..n-1) with GX."""
    started = datetime.now(UTC)
    spec_list = specs(feed, rules, catalogue, future_tolerance_s)
    version = suite_version(feed, spec_list, rules)
    row_specs = [s for s in spec_list if s.frame == "rows"]
    site_specs = [s for s in spec_list if s.frame == "sites"]
    derived = derived_columns(feed, batch, history, rules, catalogue, run_time)
    used: set[str] = {s.kwargs["column"] for s in row_specs}
    used |= {s.column for s in row_specs if s.column is not None}
    frame = _frame(batch, derived, used)
    del derived
    exp_sites = expected_sites(catalogue, feed, batch)

    ctx = _context()
    asset = ctx.data_sources.add_pandas(f"landing_{feed}").add_dataframe_asset(f"batch_{feed}")
    batch_def = asset.add_batch_definition_whole_dataframe("whole_batch")
    suite = ctx.suites.add(build_suite(feed, row_specs, version))
    from great_expectations.validator.v1_validator import Validator

    # What Batch.validate does, minus its first batch build (get_batch builds the batch, then
    # validate builds it again). Not ValidationDefinition.run: that also serializes the whole
    # COMPLETE result into the context's result store (about 2 s per million rows, unused);
    # a trimmed copy goes to the file context for Data Docs instead (expectations/docs.py).
    res = Validator(
        batch_definition=batch_def,
        batch_parameters={"dataframe": frame},
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["row_id"],
            # Also a security setting: GX's Data Docs render sampled unexpected values as raw
            # HTML, and those pages allow inline script (tests/reliability/test_rel_hostile_pages.py).
            "exclude_unexpected_values": True,
            "return_unexpected_index_query": False,
        },
    ).validate_expectation_suite(suite, expectation_parameters={EXPECTED_SITES_PARAM: exp_sites})
    from great_expectations.core.run_identifier import RunIdentifier

    # GX types meta with its own keys only; ours go in too (the same dict, viewed untyped).
    meta = cast("dict[str, Any]", res.meta)
    meta["run_id"] = RunIdentifier(run_name=validation_run_id, run_time=started)
    meta["validation_time"] = started
    meta["citypipe_validation_run_id"] = validation_run_id
    # The v1 Validator does not copy the suite's meta into the result; Data Docs show this.
    meta[SUITE_VERSION_META] = version
    flagged, summaries = _collect(res, frame, row_specs)
    if site_specs:
        sites = site_frame(feed, batch, catalogue, run_time)
        summaries += _validate_sites(ctx, feed, sites, site_specs, version, res)
    return Validation(
        validation_run_id=validation_run_id,
        feed=feed,
        suite_name=suite_name(feed),
        rows=batch.num_rows,
        success=bool(res.success),
        statistics={k: _plain(v) for k, v in res.statistics.items()},
        results=summaries,
        flagged=flagged,
        expected_sites=exp_sites,
        started_at=started,
        ended_at=datetime.now(UTC),
        gx_result=res,
        specs=spec_list,
        suite_version=version,
    )


COMPLETENESS_WINDOW_S = 86400


def site_frame(
    feed: str, batch: pa.Table, catalogue: Catalogue, run_time: datetime
) -> pd.DataFrame:
    """One row per catalogue site of the feed (index site_id): readings received in the batch's
    recent window, expected over that window (devices x lanes x (span // period + 1); only
    for sites whose period fits the span twice, as for ``sites_reporting``, else NaN), their
    ratio, and ``site_lag_s`` = run time - the site's newest reading (NaN when silent: the
    completeness check speaks for it).

    The window runs from the batch's newest reading back to its oldest reading at most
    ``COMPLETENESS_WINDOW_S`` earlier: one late or archived reading from months ago must not stretch the expectation to
    months and fail every site (issue 7). Days further back are judged by
    dq.site_day_completeness, one day at a time."""
    import pyarrow.compute as pc

    site_list = sorted(catalogue.by_feed(feed), key=lambda s: s.site_id)
    received: dict[str, int] = {}
    newest: dict[str, int] = {}
    span_s = 0.0
    if batch.num_rows:
        ts = pc.cast(batch["observed_at"], pa.int64())
        newest_us = pc.max(ts).as_py()
        recent = pc.greater_equal(ts, newest_us - COMPLETENESS_WINDOW_S * 1_000_000)
        # the oldest reading inside the window: what the batch really covers
        since = pc.min(pc.filter(ts, recent)).as_py()
        span_s = (newest_us - since) / 1e6
        grouped = pa.table({"site_id": batch["site_id"], "ts": ts, "recent": recent}).group_by(
            "site_id"
        )
        for r in grouped.aggregate([("recent", "sum"), ("ts", "max")]).to_pylist():
            received[r["site_id"]] = int(r["recent_sum"] or 0)
            newest[r["site_id"]] = r["ts_max"]
    run_us = run_time.timestamp() * 1e6
    rows = []
    for s in site_list:
        lanes = int(cast(int, s.get("lanes", 1)) or 1) if feed == "traffic" else 1
        judged = s.period_s * 2 <= span_s
        expected = len(s.device_ids) * lanes * (int(span_s // s.period_s) + 1) if judged else 0
        got = received.get(s.site_id, 0)
        rows.append(
            {
                "site_id": s.site_id,
                "site_received": got,
                "site_expected": expected,
                "site_completeness_ratio": got / expected if expected else np.nan,
                "site_lag_s": (run_us - newest[s.site_id]) / 1e6 if s.site_id in newest else np.nan,
            }
        )
    cols = ["site_id", "site_received", "site_expected", "site_completeness_ratio", "site_lag_s"]
    frame = pd.DataFrame(rows, columns=cols).astype(
        {"site_completeness_ratio": "float64", "site_lag_s": "float64"}
    )
    return frame.set_index(pd.Index(frame.pop("site_id"), name="site_id"))


def _validate_sites(
    ctx: Any, feed: str, sites: pd.DataFrame, site_specs: list[Spec], version: str, res: Any
) -> list[dict[str, Any]]:
    """Validate the per-site frame with GX; the results join the batch's (``res``, for Data
    Docs and statistics) as batch-level results naming the failing sites (no reading flagged)."""
    from great_expectations.validator.v1_validator import Validator

    asset = ctx.data_sources.add_pandas(f"sites_{feed}").add_dataframe_asset(f"sites_{feed}")
    batch_def = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = build_suite(feed, site_specs, version)
    suite.name = f"{suite_name(feed)}_sites"
    site_res = Validator(
        batch_definition=batch_def,
        batch_parameters={"dataframe": sites},
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["site_id"],
            "exclude_unexpected_values": True,
            "return_unexpected_index_query": False,
        },
    ).validate_expectation_suite(ctx.suites.add(suite))
    failing: dict[str, list[str]] = {}
    for r in site_res.results:
        config = r.expectation_config
        assert config is not None  # a suite's results always carry their expectation
        name = (config.meta or {}).get("name", config.type)
        unexpected = (r.result or {}).get("unexpected_index_list") or []
        if len(unexpected) == 1 and isinstance(unexpected[0].get("site_id"), list):
            failing[name] = [str(x) for x in unexpected[0]["site_id"]]
        else:
            failing[name] = [str(u["site_id"]) for u in unexpected]
    _flagged, summaries = _collect(site_res, sites, site_specs)
    for s in summaries:
        s["unexpected_sites"] = sorted(failing.get(s["name"], []))
    res.results.extend(site_res.results)
    n_ok = sum(1 for r in res.results if r.success)
    res.statistics.update(
        evaluated_expectations=len(res.results),
        successful_expectations=n_ok,
        unsuccessful_expectations=len(res.results) - n_ok,
        success_percent=100.0 * n_ok / len(res.results) if res.results else None,
    )
    res.success = bool(res.success) and bool(site_res.success)
    return summaries


def _row_ids(unexpected: list[Any]) -> np.ndarray:
    """Row ids from GX's unexpected_index_list: [{"row_id": [ids]}] or [{"row_id": id}, ...]."""
    if len(unexpected) == 1 and isinstance(unexpected[0].get("row_id"), list):
        return np.asarray(unexpected[0]["row_id"], dtype=np.int64)
    return np.fromiter((u["row_id"] for u in unexpected), dtype=np.int64, count=len(unexpected))


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _collect(res: Any, frame: Any, spec_list: list[Spec]) -> tuple[pa.Table, list[dict[str, Any]]]:
    by_name = {s.name: s for s in spec_list}
    parts: list[pa.Table] = []
    summaries: list[dict[str, Any]] = []
    for r in res.results:
        meta = r.expectation_config.meta or {}
        name = meta.get("name", r.expectation_config.type)
        spec = by_name.get(name)
        result = r.result or {}
        unexpected = result.get("unexpected_index_list") or []
        level = meta.get("level", "row")
        summaries.append(
            {
                "name": name,
                "type": r.expectation_config.type,
                "column": meta.get("column"),
                "level": level,
                "success": bool(r.success),
                "unexpected_count": int(result.get("unexpected_count") or 0)
                if level == "row"
                else 0,
                "unexpected_percent": _plain(result.get("unexpected_percent")),
                "partial_unexpected_list": [
                    _plain(x) for x in (result.get("partial_unexpected_list") or [])[:20]
                ],
                "observed_value": _plain(result.get("observed_value"))
                if level == "batch"
                else None,
                "exception": (r.exception_info or {}).get("exception_message")
                if r.exception_info and r.exception_info.get("raised_exception")
                else None,
                "why": meta.get("why", ""),
            }
        )
        if r.exception_info and r.exception_info.get("raised_exception"):
            # An expectation that crashed says nothing about rows; the run is marked failed.
            continue
        if level != "row" or not unexpected:
            continue
        row_ids = _row_ids(unexpected)
        col = spec.column if spec else None
        n = len(row_ids)
        value: pa.Array = pa.nulls(n, pa.float64())
        text: pa.Array = pa.nulls(n, pa.string())
        if col is not None and col in frame.columns:
            src = frame[col].to_numpy()[row_ids]  # row_id == position (0..n-1)
            if col in _TEXT_COLUMNS:
                text = pa.array([None if x is None else str(x) for x in src], pa.string())
            elif col == "observed_at":
                text = pa.array([str(x) for x in src], pa.string())
            else:
                value = pa.array(src.astype(np.float64), pa.float64())
        scope = spec.scope if spec else "reading"
        invalidates = list(spec.invalidates) if spec else []
        parts.append(
            pa.table(
                {
                    "row_id": pa.array(row_ids, pa.int64()),
                    "expectation": pa.array([name] * n, pa.string()),
                    "column_name": pa.array([col] * n, pa.string()),
                    "observed_value": value,
                    "observed_text": text,
                    "scope": pa.repeat(pa.scalar(scope, pa.string()), n),
                    "invalidated_columns": pa.repeat(
                        pa.scalar(invalidates, pa.list_(pa.string())), n
                    ),
                },
                schema=FLAGGED_SCHEMA,
            )
        )
        for key in _BIG_KEYS:
            result.pop(key, None)
    for r in res.results:
        for key in _BIG_KEYS:
            (r.result or {}).pop(key, None)
    flagged = pa.concat_tables(parts) if parts else FLAGGED_SCHEMA.empty_table()
    return flagged, summaries
