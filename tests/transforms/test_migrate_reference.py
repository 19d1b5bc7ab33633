from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from transforms.migrate import apply
from transforms.reference import ReferenceError, load_reference


def test_apply_runs_new_and_changed_files_once(tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "0200_a.sql").write_text("create table if not exists kpi.a (x integer);\n")
    (mig / "0100_b.sql").write_text("create table if not exists int.b (x integer);\n")
    con = duckdb.connect()
    assert apply(con, mig) == ["0100_b.sql", "0200_a.sql"]
    assert apply(con, mig) == []
    (mig / "0200_a.sql").write_text(
        "create table if not exists kpi.a (x integer);\ncreate table if not exists kpi.c (y integer);\n"
    )
    assert apply(con, mig) == ["0200_a.sql"]
    assert con.execute("select count(*) from kpi.c").fetchone() == (0,)


def test_load_reference_replaces_and_requires_source(tmp_path: Path) -> None:
    d = tmp_path / "standards"
    d.mkdir()
    (d / "limits.csv").write_text("item,limit_v,source,valid_from\nph,9,GB 3838-2002,2002-06-01\n")
    con = duckdb.connect()
    assert load_reference(con, d) == {"ref.limits": 1}
    (d / "limits.csv").write_text(
        "item,limit_v,source,valid_from\nph,9,GB,2002-06-01\ndo,2,GB,2002-06-01\n"
    )
    assert load_reference(con, d) == {"ref.limits": 2}
    assert con.execute("select typeof(valid_from) from ref.limits limit 1").fetchone() == ("DATE",)
    (d / "bad.csv").write_text("item,v\nx,1\n")
    with pytest.raises(ReferenceError, match="source"):
        load_reference(con, d)
