"""The KPI pack as published at an instant: time travel on a DuckLake warehouse.

Staff ask "what did we publish for day D, as it stood on date X?": a late revision may have
restated a value since. On a DuckLake backend every commit is a snapshot, so the answer is
``kpi.pack_values`` read ``AT (VERSION => s)``, s the snapshot current at that instant (for a
date X: at the end of X, local time), next to the ``kpi.restatements`` recorded since then.

The snapshot is looked up first (``AT`` takes no subquery) on the snapshots' typed times, then
the pack is read at its version. Limits, each with its own exception and a clear message:

- the single DuckDB file keeps no history (:class:`TimeTravelUnavailable`);
- an instant before the lake's first snapshot, or before the oldest one the maintenance kept
  (``CITYPIPE_SNAPSHOT_RETENTION_DAYS``), has no snapshot (:class:`NoSnapshotAt`);
- a snapshot from before the KPI tables existed has no pack (:class:`NoSnapshotAt`).

``pack_as_published`` is the function a caller (CLI, the API of issue 11) uses; it opens a
reader, so it never waits for a writer on a lake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.settings import Settings

# The stable keys of every KPI of a pack (``citypipe kpis --format json``, docs/kpis.md).
KPI_KEYS = (
    "kpi_id",
    "dimension",
    "value",
    "value_text",
    "unit",
    "target",
    "status",
    "coverage_pct",
    "details",
    "computed_at",
)
RESTATEMENT_KEYS = (
    "kpi_id",
    "dimension",
    "old_value",
    "new_value",
    "old_value_text",
    "new_value_text",
    "old_status",
    "restated_at",
    "reason",
)


class TimeTravelUnavailable(RuntimeError):
    """The warehouse backend keeps no snapshots (the single DuckDB file)."""


class NoSnapshotAt(LookupError):
    """No snapshot (or no KPI pack) at the instant asked; the message says why."""


@dataclass(frozen=True)
class PublishedPack:
    """Day ``day``'s pack as it stood at ``as_of``: read at snapshot ``snapshot_id`` (taken at
    ``snapshot_time``, the last one at or before ``as_of``). ``restated_since``: the
    restatements of the day recorded after that snapshot (what changed since)."""

    day: date
    as_of: datetime
    snapshot_id: int
    snapshot_time: datetime
    kpis: list[dict[str, Any]] = field(default_factory=list)
    restated_since: list[dict[str, Any]] = field(default_factory=list)


def end_of_day(day: date, tz: str) -> datetime:
    """The instant a local day ends (the next local midnight): "as published on date X" is the
    snapshot current then, including everything committed during X."""
    # The snapshot lookup takes times <= the instant; a microsecond earlier keeps X+1's first
    # commit (made exactly at midnight) out.
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(tz)) - timedelta(
        microseconds=1
    )


def pack_items(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Pack rows (``KPI_KEYS`` order) as JSON-ready dicts: details parsed, times ISO."""
    out = []
    for r in rows:
        item = dict(zip(KPI_KEYS, r, strict=True))
        item["details"] = json.loads(item["details"]) if item["details"] else {}
        item["computed_at"] = item["computed_at"].isoformat() if item["computed_at"] else None
        out.append(item)
    return out


def pack_as_published(
    settings: Settings, day: date, as_of: datetime, prefix: str | None = None
) -> PublishedPack:
    """Day ``day``'s KPI pack as it stood at ``as_of`` (tz-aware), with the restatements since.

    Raises :class:`TimeTravelUnavailable` on the single file, :class:`NoSnapshotAt` when the
    lake has no snapshot (or no pack) at ``as_of``, FileNotFoundError without a warehouse.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    target = settings.warehouse_target
    if not target.is_lake:
        raise TimeTravelUnavailable(
            f"time travel needs a DuckLake warehouse; {target.describe()} keeps no history."
            " Set CITYPIPE_WAREHOUSE to a ducklake: URL (docs/warehouse.md; an existing file"
            " moves over with `citypipe warehouse migrate --to URL`)"
        )
    import duckdb

    from transforms import SQL
    from warehouse.db import reader

    with reader(settings) as con:
        found = SQL.run(con, "queries/select_snapshot_at.sql", {"at": as_of}).fetchone()
        assert found is not None  # an aggregate: always one row
        snapshot_id, snapshot_time, oldest_id, oldest_time = found
        if snapshot_id is None:
            raise NoSnapshotAt(_why_none(as_of, oldest_id, oldest_time, settings))
        params = {"version": snapshot_id, "day": day, "prefix": prefix}
        try:
            rows = SQL.run(con, "queries/select_pack_at_version.sql", params).fetchall()
            since = SQL.run(con, "queries/select_restatements_since_version.sql", params)
            restated = since.fetchall()
        except duckdb.CatalogException as exc:
            raise NoSnapshotAt(
                f"no KPI pack had been published yet at {as_of.isoformat(timespec='seconds')}"
                f" (snapshot {snapshot_id} of {snapshot_time.isoformat()} has no kpi.pack_values)"
            ) from exc
    return PublishedPack(
        day=day,
        as_of=as_of,
        snapshot_id=int(snapshot_id),
        snapshot_time=snapshot_time,
        kpis=pack_items(rows),
        restated_since=[_restatement(r) for r in restated],
    )


def _restatement(row: tuple[Any, ...]) -> dict[str, Any]:
    item = dict(zip(RESTATEMENT_KEYS, row, strict=True))
    item["restated_at"] = item["restated_at"].isoformat() if item["restated_at"] else None
    return item


def _why_none(
    as_of: datetime, oldest_id: int | None, oldest_time: datetime | None, settings: Settings
) -> str:
    at = as_of.isoformat(timespec="seconds")
    if oldest_id is None or oldest_time is None:
        return f"the warehouse has no snapshot at all, so nothing as of {at}"
    if oldest_id == 0:  # the lake's creation is still kept: the instant is before it
        return (
            f"nothing was published as of {at}: the warehouse's history starts at"
            f" {oldest_time.isoformat()} (its first snapshot)"
        )
    return (
        f"{at} is past the retention: the oldest snapshot kept is from {oldest_time.isoformat()}"
        f" (snapshots older than CITYPIPE_SNAPSHOT_RETENTION_DAYS ="
        f" {settings.snapshot_retention_days} days are expired by the maintenance)"
    )
