"""The steps of the ``citypipe_ingest`` DAG (every 10 minutes), importable without Airflow.

discover -> validate (per feed: read, dedupe, GX) -> load (per feed, one transaction) ->
load quarantine -> record dq (completeness, staging views) -> mark dirty days -> the open day's
provisional intra-day values (``transforms.intraday``), and Data Docs and clean up. Every step is idempotent: the ledger keeps a file from loading twice, and the
follow-ups work off ``meta.load_batches`` rows still pending, so a step that failed is redone by
the next run. Between steps only small typed dicts travel (XCom: plain JSON values); the
validated batch waits on disk under ``{home}/work/ingest/{load_run_id}``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import pyarrow as pa

from common.catalogue import FEEDS, load_catalogue
from common.settings import Settings
from expectations import docs
from expectations.derive import history_lookback
from expectations.reference import feed_rules
from expectations.validate import Validation, validate_table, with_scope
from transforms import intraday
from warehouse import batch as wb
from warehouse import followups, ledger, load, quarantine

# The DAG's failure callback (log + status file), re-exported so the DAG imports only this.
from warehouse.alerts import record_task_failure as record_task_failure

log = logging.getLogger(__name__)


class Found(TypedDict):
    load_run_id: str
    # new files per feed, and under "quarantine" the new quarantine files
    files: dict[str, list[str]]


class Validated(TypedDict):
    feed: str
    load_run_id: str
    validation_run_id: str
    files: list[str]
    rows_read: int
    rows: int
    success: bool
    flagged_by_expectation: dict[str, int]
    work: wb.ParkedFiles | None  # None: no files, nothing to load


class Loaded(load.MergeCounts):
    feed: str
    load_run_id: str
    loaded: bool
    changed_dates: list[str]  # ISO local days


def discover(settings: Settings, run_id: str) -> Found:
    """New landing files per feed (bounded per run) and new quarantine files; removes the parked
    batches that killed or failed runs left behind."""
    for stale in wb.remove_stale_work_dirs(settings):
        log.warning("removed %s: parked batches of a run that never finished", stale)
    return Found(load_run_id=wb.safe_id(run_id), files=ledger.discover_new_files(settings))


def validate_feed(settings: Settings, feed: str, files: list[str], load_run_id: str) -> Validated:
    """Read, deduplicate and GX-validate one feed's new files; park the result for the loader."""
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}")
    out = Validated(
        feed=feed,
        load_run_id=load_run_id,
        validation_run_id=f"{wb.safe_id(load_run_id)}-{feed}-{uuid.uuid4().hex[:6]}",
        files=list(files),
        rows_read=0,
        rows=0,
        success=True,
        flagged_by_expectation={},
        work=None,
    )
    if not files:
        return out
    raw, file_info = wb.read_landing(feed, files)
    dedupe_stats: dict[str, int] = {}
    batch = wb.dedupe_batch(raw, dedupe_stats)
    v = _validate(settings, feed, batch, out["validation_run_id"])
    record = wb.ValidationRecord(
        validation_run_id=v.validation_run_id,
        suite_name=v.suite_name,
        suite_version=v.suite_version,
        success=v.success,
        statistics=v.statistics,
        results=v.results,
        batch_checks=wb.batch_checks(batch, v.expected_sites),
        started_at=v.started_at.isoformat(),
        ended_at=v.ended_at.isoformat(),
        files=[f.__dict__ for f in file_info],
        rows_read=raw.num_rows,
        in_batch_revisions=dedupe_stats["revisions"],
        docs_id=_store_docs_result(settings, v),
    )
    work = wb.park(wb.work_dir(settings, load_run_id), feed, batch, v.flagged, record)
    return {
        **out,
        "rows_read": raw.num_rows,
        "rows": batch.num_rows,
        "success": v.success,
        "flagged_by_expectation": v.flagged_by_expectation,
        "work": work,
    }


def _validate(settings: Settings, feed: str, batch: pa.Table, validation_run_id: str) -> Validation:
    """GX-validate a deduplicated batch against the rules in force today (local day), with the
    stored history the windowed checks need."""
    run_time = datetime.now(UTC)
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    rules = feed_rules(
        settings.reference_dir, feed, run_time.astimezone(ZoneInfo(settings.timezone)).date()
    )
    periods = [s.period_s for s in catalogue.by_feed(feed)] or [60]
    history = wb.read_history(settings, feed, batch, history_lookback(rules, max(periods)))
    return validate_table(
        feed,
        batch,
        rules=rules,
        catalogue=catalogue,
        run_time=run_time,
        validation_run_id=validation_run_id,
        future_tolerance_s=settings.future_tolerance_s,
        history=history,
    )


def _store_docs_result(settings: Settings, validation: Validation) -> list[Any] | None:
    """Keep a trimmed copy of the GX result in the file context for Data Docs."""
    try:
        return docs.store_result(settings.gx_dir, validation)
    except Exception:  # Data Docs are a view; never lose a load over them
        log.exception("could not store the validation result for Data Docs")
        return None


def load_feed(
    settings: Settings, validated: Validated, *, fail_before_commit: bool = False
) -> Loaded:
    """Load one validated feed batch in one transaction (``warehouse.load``); a rerun loads
    nothing twice. ``fail_before_commit`` exists for the interruption test."""
    out = Loaded(
        feed=validated["feed"],
        load_run_id=validated["load_run_id"],
        loaded=False,
        **load.no_counts(),
        changed_dates=[],
    )
    work = validated["work"]
    if not work:
        return out
    batch, flags, record = wb.unpark(work)
    result = load.load_feed_batch(
        settings,
        validated["feed"],
        validated["load_run_id"],
        batch,
        with_scope(flags),
        record,
        fail_before_commit=fail_before_commit,
    )
    wb.discard(work)
    return {
        **out,
        **result["counts"],
        "loaded": result["loaded"],
        "changed_dates": [d.isoformat() for d in result["changed_dates"]],
    }


def load_quarantine(settings: Settings, found: Found) -> dict[str, int]:
    """The new quarantine files into dq.quarantine; records per feed."""
    return quarantine.load_quarantine(settings, found["files"]["quarantine"], found["load_run_id"])


def record_dq(settings: Settings) -> int:
    """Site-day completeness for the days loaded; the staging views."""
    return followups.record_dq(settings)


def mark_dirty_days(settings: Settings) -> int:
    """Changed days into core.dirty_days for the KPI DAG; how many are pending."""
    return len(followups.mark_dirty_days(settings))


def compute_intraday(settings: Settings) -> dict[str, Any]:
    """The open day's provisional values as of now (hourly AQI, TPI, waterlogging depths and
    events, good days with today open), from what the loads stored; a JSON summary with the
    run's timings."""
    summary = intraday.compute_intraday(settings).as_dict()
    log.info("intraday %s", summary)
    return summary


def build_data_docs(settings: Settings, found: Found) -> str | None:
    """Rebuild the Data Docs site, link each validation run to its page, drop the run's parked
    batches. Returns the site's index."""
    index, pages = docs.build(settings.gx_dir)
    followups.set_data_docs_urls(settings, pages)
    wb.remove_work_dir(settings, found["load_run_id"])
    return index
