"""The step of the ``citypipe_maintenance`` DAG (daily, after the KPI run), importable without
Airflow; the DAG file only wires it.

``maintain``: on a DuckLake backend, merge small adjacent files, expire the snapshots older than
``CITYPIPE_SNAPSHOT_RETENTION_DAYS`` and delete the files nothing reads any more; on the single
DuckDB file, ``CHECKPOINT``. The report (sizes before and after, see
``warehouse.maintenance``) is logged, returned (an XCom of plain JSON types) and written to
``{home}/status/maintenance.json`` for operators. Idempotent: a second run finds less to do.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from common.settings import Settings, get_settings

# The DAG's failure callback (log + status file), re-exported so the DAG imports only this.
from warehouse.alerts import record_task_failure as on_failure

if TYPE_CHECKING:
    from warehouse.maintenance import MaintenanceResult

__all__ = ["Report", "load_settings", "maintain", "on_failure", "run", "schedule_timezone"]


class Report(TypedDict):
    """``warehouse.maintenance.MaintenanceResult.as_dict()``: sizes before/after as dicts of
    ``StorageFigures`` fields, timestamps as ISO strings."""

    backend: str
    target: str
    before: dict[str, Any]
    after: dict[str, Any]
    retention_days: int | None
    expired_before: str | None
    snapshots_expired: int
    files_removed: int
    seconds: float
    note: str


def load_settings() -> Settings:
    return get_settings()


def schedule_timezone() -> str:
    """The zone of the DAG's schedule: the settings' time zone (read when the DAG is parsed)."""
    return get_settings().timezone


def maintain(settings: Settings) -> Report:
    """The DAG's task: :func:`run` with the settings' retention, as plain JSON types."""
    report: Report = run(settings).as_dict()  # type: ignore[assignment]  # same keys
    return report


def run(
    settings: Settings,
    *,
    retention_days: int | None = None,
    cleanup_grace: timedelta | None = None,
    now: datetime | None = None,
) -> MaintenanceResult:
    """Run the warehouse maintenance, log its report and record it in the status folder."""
    from warehouse import maintenance

    grace = maintenance.CLEANUP_GRACE if cleanup_grace is None else cleanup_grace
    result = maintenance.maintain(
        settings, retention_days=retention_days, cleanup_grace=grace, now=now
    )
    _write_status(settings, result.as_dict())
    return result


def _write_status(settings: Settings, report: dict[str, Any]) -> None:
    """Replace ``status/maintenance.json`` atomically (a reader never sees half a file)."""
    status = settings.status_dir
    status.mkdir(parents=True, exist_ok=True)
    tmp = status / f".maintenance.json.{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, status / "maintenance.json")
