"""The one SQL toolkit: splitting, binding, identifier whitelist, literals, transactions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from common.sql import SqlFolder, literal, statements, timings, transaction


def test_split_and_bind(tmp_path: Path) -> None:
    f = tmp_path / "m.sql"
    f.write_text(
        "-- a model\ncreate table t (d date, v integer);\n"
        "insert into t values ($day, 1);\n"
        "insert into t\nselect $day + 1, $n;\n-- trailing comment\n"
    )
    assert len(statements(f)) == 3
    con = duckdb.connect()
    with timings() as spent:
        SqlFolder(tmp_path).run(con, "m.sql", {"day": dt.date(2026, 3, 1), "n": 7})
    assert con.execute("select count(*), max(v) from t").fetchone() == (2, 7)
    assert list(spent) == [f"{tmp_path.name}/m.sql"]


def test_parameters_match_whole_words_outside_comments(tmp_path: Path) -> None:
    f = tmp_path / "q.sql"
    # $day_count must not take $day; $unused in a comment must not be bound (DuckDB refuses it).
    f.write_text("-- uses $unused\nselect $day_count + 0 as n;\n")
    con = duckdb.connect()
    rel = SqlFolder(tmp_path).relation(con, "q.sql", {"day": 1, "day_count": 5, "unused": 9})
    assert rel.fetchall() == [(5,)]


def test_feed_placeholder_takes_only_a_known_feed(tmp_path: Path) -> None:
    (tmp_path / "f.sql").write_text("create table obs_{{feed}} (x integer);\n")
    con = duckdb.connect()
    SqlFolder(tmp_path).run(con, "f.sql", feed="air")
    assert con.execute("select count(*) from obs_air").fetchone() == (0,)
    with pytest.raises(ValueError, match="not one of"):
        SqlFolder(tmp_path).run(con, "f.sql", feed="air; drop table obs_air")


def test_literal_doubles_quotes_and_refuses_nul() -> None:
    assert literal("a'b") == "'a''b'"
    with pytest.raises(ValueError):
        literal("a\x00b")


def test_nested_transaction_joins_the_outer_one_and_rolls_back_whole() -> None:
    con = duckdb.connect()
    con.execute("create table t (x integer)")
    with pytest.raises(RuntimeError), transaction(con):
        con.execute("insert into t values (1)")
        with transaction(con):
            con.execute("insert into t values (2)")
        raise RuntimeError("boom")
    assert con.execute("select count(*) from t").fetchone() == (0,)
    with transaction(con), transaction(con):
        con.execute("insert into t values (3)")
    assert con.execute("select count(*) from t").fetchone() == (1,)
