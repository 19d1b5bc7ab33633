"""The one connection factory opens each backend the same way (CITYPIPE_WAREHOUSE)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.settings import Settings
from warehouse import db

READ_COUNT = (
    "from common.settings import get_settings; from warehouse import db\n"
    "with db.reader(get_settings()) as con:\n"
    "    print(con.execute('select count(*) from core.probe').fetchone()[0])\n"
)


@pytest.mark.backends("file", "sqlite", "postgres")
def test_a_write_is_read_back_through_the_factory(settings: Settings, warehouse_kind: str) -> None:
    assert not db.exists(settings)
    con = db.connect(settings)
    try:
        assert db.exists(settings)
        con.execute("create schema if not exists core")
        con.execute("create table core.probe (n integer)")
        con.execute("insert into core.probe values (1), (2)")
        tz = con.execute("select current_setting('TimeZone')").fetchone()
        assert tz == ("UTC",)
    finally:
        con.close()
    with db.reader(settings) as r:
        assert r.execute("select sum(n) from core.probe").fetchone() == (3,)
        kind = r.execute(
            "select type from duckdb_databases() where database_name = current_database()"
        ).fetchone()
    assert kind == ("duckdb",) if warehouse_kind == "file" else ("ducklake",)


@pytest.mark.backends("sqlite", "postgres")
def test_a_reader_process_is_not_blocked_by_an_open_write(settings: Settings) -> None:
    con = db.connect(settings)
    try:
        con.execute("create schema if not exists core")
        con.execute("create table core.probe (n integer)")
        con.execute("insert into core.probe values (1)")
        con.execute("begin")
        con.execute("insert into core.probe values (2), (3)")
        # Another process reads while the write is open: the last committed snapshot, at once.
        out = subprocess.run(
            [sys.executable, "-c", READ_COUNT], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "1"
        con.execute("commit")
    finally:
        con.close()
    out = subprocess.run(
        [sys.executable, "-c", READ_COUNT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
