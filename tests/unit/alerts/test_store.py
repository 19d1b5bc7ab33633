"""The alert store: WAL mode, round trip, and a reader never blocked by an open write."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.rules import Alert, Change
from alerts.store import AlertStore, read_changes, read_open, read_recent, store_path

T0 = datetime(2026, 7, 14, 2, 0, tzinfo=UTC)


def alert(**kw: object) -> Alert:
    base: dict[str, object] = dict(
        id="waterlogging:WS-WLG-01:20260714T020000Z", kind="waterlogging", site_id="WS-WLG-01",
        level="waterlogging", level_no=1, value=18.0, unit="cm", threshold=15.0,
        started_at=T0, updated_at=T0 + timedelta(minutes=2), peak_value=18.0,
    )  # fmt: skip
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_round_trip_and_history(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    store = AlertStore(path)
    a = alert()
    store.write([Change("raise", a)])
    assert read_open(path) == [a]
    up = alert(level="closure", level_no=2, value=27.0, threshold=25.0, peak_value=27.0)
    store.write([Change("upgrade", up)])
    done = alert(level="closure", level_no=2, value=12.0, threshold=25.0, peak_value=27.0,
                 cleared_at=T0 + timedelta(minutes=30))  # fmt: skip
    store.write([Change("clear", done)])
    assert read_open(path) == []
    assert read_recent(path, T0) == [done]
    assert read_recent(path, T0 + timedelta(hours=1)) == []
    assert [c["action"] for c in read_changes(path, a.id)] == ["raise", "upgrade", "clear"]
    assert store.topics() == [("waterlogging", "WS-WLG-01", None)]
    store.close()
    # A second episode of the same (kind, site) while one is open is refused by the schema.
    store = AlertStore(path)
    assert store.con.execute("pragma journal_mode").fetchone()[0] == "wal"
    second = alert(id="waterlogging:WS-WLG-01:20260715T020000Z", started_at=T0 + timedelta(days=1))
    store.write([Change("raise", second)])
    assert store.topics() == [("waterlogging", "WS-WLG-01", second.id)]
    third = alert(id="waterlogging:WS-WLG-01:20260716T020000Z", started_at=T0 + timedelta(days=2))
    try:
        store.write([Change("raise", third)])
        raise AssertionError("two open alerts of one (kind, site) were stored")
    except sqlite3.IntegrityError:
        pass
    store.close()


def test_a_reader_is_not_blocked_by_an_open_write(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    store = AlertStore(path)
    store.write([Change("raise", alert())])
    # The writer holds a write transaction with an uncommitted change ...
    store.con.execute("begin immediate")
    store.con.execute("update alerts set value = 99")
    # ... a reader (another connection, read-only) gets the committed state at once.
    assert [a.value for a in read_open(path)] == [18.0]
    store.con.execute("rollback")
    store.close()
