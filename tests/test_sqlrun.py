from __future__ import annotations

from pathlib import Path

import duckdb

from transforms.sqlrun import read_statements, run_file


def test_split_and_bind(tmp_path: Path) -> None:
    f = tmp_path / "m.sql"
    f.write_text(
        "-- a model\ncreate table t (d date, v integer);\n"
        "insert into t values ($day, 1);\n"
        "insert into t\nselect $day + 1, $n;\n-- trailing comment\n"
    )
    assert len(read_statements(f)) == 3
    con = duckdb.connect()
    import datetime as dt

    run_file(con, f, {"day": dt.date(2026, 3, 1), "n": 7})
    assert con.execute("select count(*), max(v) from t").fetchone() == (2, 7)
