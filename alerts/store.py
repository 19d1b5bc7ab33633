"""The durable alert store: one SQLite file, ``{home}/alerts/alerts.sqlite``, in WAL mode.

The service is the only writer; it writes an alert (and the change) and commits, with
``synchronous=FULL``, *before* publishing it, so a published alert is always in the store. WAL
mode lets readers (the API, ``citypipe alerts --list``) read while the service writes: a reader
sees the last committed state and never blocks the writer, nor is blocked by it. Schema and
queries: ``alerts/sql/*.sql`` (stdlib ``sqlite3`` binds their ``$name`` parameters by value).
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from alerts.rules import Alert, Change, iso
from common.sql import statements

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent / "sql"
BUSY_TIMEOUT_S = 10.0


def store_path(home: Path) -> Path:
    return home / "alerts" / "alerts.sqlite"


def _run(
    con: sqlite3.Connection, name: str, params: Mapping[str, object] | None = None
) -> sqlite3.Cursor:
    cur = con.cursor()
    for stmt in statements(SQL_DIR / name):
        cur.execute(stmt, dict(params or {}))
    return cur


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _alert(row: sqlite3.Row) -> Alert:
    started = _ts(row["started_at"])
    updated = _ts(row["updated_at"])
    assert started is not None and updated is not None
    return Alert(
        id=row["alert_id"],
        kind=row["kind"],
        site_id=row["site_id"],
        level=row["level"],
        level_no=row["level_no"],
        value=row["value"],
        unit=row["unit"],
        threshold=row["threshold"],
        started_at=started,
        updated_at=updated,
        cleared_at=_ts(row["cleared_at"]),
        peak_value=row["peak_value"],
        channel=row["channel"],
    )


class AlertStore:
    """The writer's connection (the service). Readers use ``read_open`` / ``read_recent``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Opened by the service's main thread, then used by its worker only (one at a time).
        self.con = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.con.row_factory = sqlite3.Row
        mode = self.con.execute("pragma journal_mode=wal").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{path}: could not switch to WAL mode (got {mode})")
        # A committed alert survives a power cut before it is published.
        self.con.execute("pragma synchronous=full")
        self.con.execute("begin immediate")
        try:
            _run(self.con, "create_alerts.sql")
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise

    def write(self, changes: list[Change]) -> None:
        """Store the changes in one transaction (durable when this returns)."""
        if not changes:
            return
        now = iso(datetime.now(UTC))
        self.con.execute("begin immediate")
        try:
            for ch in changes:
                a = ch.alert
                params = {
                    "alert_id": a.id,
                    "kind": a.kind,
                    "site_id": a.site_id,
                    "level": a.level,
                    "level_no": a.level_no,
                    "value": a.value,
                    "unit": a.unit,
                    "threshold": a.threshold,
                    "started_at": iso(a.started_at),
                    "updated_at": iso(a.updated_at),
                    "cleared_at": iso(a.cleared_at),
                    "peak_value": a.peak_value,
                    "channel": a.channel,
                    "recorded_at": now,
                    "action": ch.action,
                }
                _run(self.con, "upsert_alert.sql", params)
                _run(self.con, "insert_alert_change.sql", params)
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise

    def save_checkpoint(self, state: dict[str, object]) -> None:
        """The rules' state (``Engine.checkpoint()``), committed before the batch is acked."""
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        params = {"saved_at": iso(datetime.now(UTC)), "state": blob}
        self.con.execute("begin immediate")
        try:
            _run(self.con, "upsert_engine_state.sql", params)
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise

    def load_checkpoint(self) -> dict[str, object] | None:
        """The last checkpoint; None if there is none or it cannot be read (then the service
        starts from the open alerts alone)."""
        row = _run(self.con, "select_engine_state.sql").fetchone()
        if row is None:
            return None
        try:
            state = pickle.loads(row["state"])  # our own file, owner-only (operations.md)
        except Exception:
            log.warning("alert store %s: unreadable engine checkpoint ignored", self.path)
            return None
        return state if isinstance(state, dict) else None

    def open_alerts(self) -> list[Alert]:
        return [_alert(r) for r in _run(self.con, "select_open_alerts.sql").fetchall()]

    def topics(self) -> list[tuple[str, str, str | None]]:
        """(kind, site_id, open alert id or None) of every (kind, site) ever alerted."""
        rows = _run(self.con, "select_alert_topics.sql").fetchall()
        return [(r["kind"], r["site_id"], r["alert_id"]) for r in rows]

    def close(self) -> None:
        self.con.close()


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (never blocks the service, never blocked by it: WAL)."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    con.row_factory = sqlite3.Row
    return con


def read_open(path: Path) -> list[Alert]:
    """The active alerts, oldest first."""
    con = connect_reader(path)
    try:
        return [_alert(r) for r in _run(con, "select_open_alerts.sql").fetchall()]
    finally:
        con.close()


def read_recent(path: Path, since: datetime, limit: int = 1000) -> list[Alert]:
    """Alerts open now or cleared at or after ``since``, newest first."""
    con = connect_reader(path)
    try:
        rows = _run(con, "select_recent_alerts.sql", {"since": iso(since), "limit": limit})
        return [_alert(r) for r in rows.fetchall()]
    finally:
        con.close()


def read_changes(path: Path, alert_id: str) -> list[dict[str, object]]:
    con = connect_reader(path)
    try:
        rows = _run(con, "select_alert_changes.sql", {"alert_id": alert_id}).fetchall()
        return [dict(r) for r in rows]
    finally:
        con.close()
