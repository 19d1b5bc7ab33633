"""Snapshots of the single-file warehouse: published only when the file changed and no writer
holds it, read while a writer works, removed only when nobody reads them."""

from __future__ import annotations

import pytest

from common.settings import Settings
from serving import snapshot
from serving.source import Source
from warehouse import db

pytestmark = [pytest.mark.integration, pytest.mark.backends("file")]


def _write(settings: Settings, n: int) -> None:
    with db.writer(settings, migrate=False) as con:
        con.execute("create schema if not exists core")
        con.execute("create table if not exists core.probe (n integer)")
        con.execute("insert into core.probe values (?)", [n])


def _count(source: Source) -> int:
    with source.cursor() as cur:
        row = cur.execute("select count(*) from core.probe").fetchone()
    assert row is not None
    return int(row[0])


def test_publish_skips_a_busy_or_unchanged_warehouse(settings: Settings) -> None:
    assert snapshot.publish(settings) is None  # no warehouse yet
    _write(settings, 1)
    first = snapshot.publish(settings)
    assert first is not None and first.path.exists()
    assert snapshot.publish(settings) is None  # unchanged: no copy
    _write(settings, 2)
    with db.exclusive_lock(settings):  # a writer at work: no wait, no copy
        assert snapshot.publish(settings) is None
    second = snapshot.publish(settings)
    assert second is not None and second.path != first.path
    assert snapshot.current(settings) == second
    assert not first.path.exists()  # nobody read it: removed


def test_the_api_source_reads_while_a_writer_holds_the_file(settings: Settings) -> None:
    _write(settings, 1)
    source = Source(settings, refresh_s=3600)  # refresh by hand below
    source.start()
    try:
        assert _count(source) == 1
        con = db.connect(settings)  # a writer holds the file open (and the lock)
        with db.exclusive_lock(settings):
            con.execute("insert into core.probe values (2)")
            assert _count(source) == 1  # the snapshot answers; the file is not touched
            assert source.refresh() is False  # busy: keeps the old snapshot
            con.close()
        with source.cursor() as held:  # a request still running on the old snapshot
            assert source.refresh() is True
            old = list((settings.home / "serve").glob("snapshot-*.duckdb"))
            assert len(old) == 2  # the old one stays while it is read
            assert held.execute("select count(*) from core.probe").fetchone() == (1,)
        assert _count(source) == 2
        left = list((settings.home / "serve").glob("snapshot-*.duckdb"))
        assert len(left) == 1  # removed after its last reader
    finally:
        source.close()
