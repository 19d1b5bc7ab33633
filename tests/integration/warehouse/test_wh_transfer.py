"""``citypipe warehouse migrate --to URL``: a single-file warehouse built by the real KPI run is
copied into a SQLite lake and a PostgreSQL lake, verified table by table, and serves the
identical KPI pack; a non-empty target is refused without --force; a value the lake cannot hold
exactly shows up as a checksum mismatch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest
from support.kpi_history import SECTION, D, pack, publish_then_restate

from citypipe.cli import main
from common.settings import Settings, get_settings
from warehouse import db
from warehouse.transfer import TargetNotEmpty, copy_to_lake, lake_settings

pytestmark = pytest.mark.backends("file")  # the source; the lakes are made here


def lake_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"ducklake:sqlite://{tmp_path / 'lake' / 'catalog.sqlite'}"
    pg = request.getfixturevalue("pg_database")
    return f"ducklake:{pg}?metadata_schema=copy_{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migrate_a_real_warehouse_to_a_lake(
    kind: str,
    wh: duckdb.DuckDBPyConnection,
    insert_obs,
    settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    publish_then_restate(wh, insert_obs)
    before = pack(wh)
    wh.close()
    assert main(["kpis", "--date", D.isoformat(), "--format", "json"]) == 0
    printed_before = json.loads(capsys.readouterr().out)
    url = lake_url(kind, tmp_path, request)
    data = str(tmp_path / "lake-data")

    assert main(["warehouse", "migrate", "--to", url, "--data-path", data]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(("core.", "kpi.", "ref.", "dq."))]
    assert any(ln.startswith("kpi.pack_values ") for ln in lines)
    assert any(ln.startswith("kpi.restatements ") for ln in lines)
    assert any(ln.startswith("core.obs_water ") for ln in lines)
    assert all(ln.rstrip().endswith(" ok") for ln in lines), out
    assert "meta.schema_migrations" not in out
    assert "all" in out and "tables verified" in out

    # The lake serves the identical pack, through the same reader the CLI uses.
    monkeypatch.setenv("CITYPIPE_WAREHOUSE", url)
    monkeypatch.setenv("CITYPIPE_WAREHOUSE_DATA_PATH", data)
    lake = get_settings()
    assert lake.warehouse_target.is_lake
    with db.reader(lake) as con:
        assert pack(con) == before
        restated = con.execute(
            "select new_value_text from kpi.restatements where kpi_id = ? and dimension = ?",
            list(SECTION),
        ).fetchall()
        assert restated == [("IV",)]
    assert main(["kpis", "--date", D.isoformat(), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == printed_before

    # Again: the target is not empty any more.
    monkeypatch.delenv("CITYPIPE_WAREHOUSE_DATA_PATH")
    monkeypatch.delenv("CITYPIPE_WAREHOUSE")
    source = str(settings.warehouse_path)
    args = ["warehouse", "migrate", "--from", source, "--to", url, "--data-path", data]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds rows" in err and "--force" in err and "Traceback" not in err
    assert main([*args, "--force"]) == 0
    assert "tables verified" in capsys.readouterr().out
    with db.reader(lake) as con:
        assert pack(con) == before


def test_a_value_the_lake_cannot_hold_is_a_mismatch(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "source.duckdb"
    con = duckdb.connect(str(source))
    con.execute("create schema core")
    # DuckLake writes HUGEINT as DOUBLE (docs/research/ducklake_2026-12.md): 17 digits drift.
    con.execute("create table core.big (n hugeint, label varchar)")
    con.execute("insert into core.big values (12345678901234567, 'a'), (3, 'b')")
    con.execute("create table core.fine (n integer)")
    con.execute("insert into core.fine select range from range(1000)")
    con.close()
    lake = lake_settings(
        settings, f"ducklake:sqlite://{tmp_path / 'lake.sqlite'}", str(tmp_path / "lake-data")
    )
    copies = {c.name: c for c in copy_to_lake(source, lake, ())}
    assert set(copies) == {"core.big", "core.fine"}
    assert copies["core.fine"].verified and copies["core.fine"].target_rows == 1000
    big = copies["core.big"]
    assert big.created and big.source_rows == big.target_rows == 2
    assert not big.verified and big.source_checksum != big.target_checksum

    with pytest.raises(TargetNotEmpty, match=r"core\.big, core\.fine"):
        copy_to_lake(source, lake, ())


def test_migrate_refuses_a_file_target_and_a_missing_source(
    settings: Settings, tmp_path: Path, capsys
) -> None:
    missing = tmp_path / "nope.duckdb"
    to = f"ducklake:sqlite://{tmp_path / 'l.sqlite'}"
    assert main(["warehouse", "migrate", "--from", str(missing), "--to", to]) == 2
    assert "no single-file warehouse" in capsys.readouterr().err
    assert main(["warehouse", "migrate", "--to", f"duckdb://{tmp_path / 'x.duckdb'}"]) == 2
    assert "must be a DuckLake" in capsys.readouterr().err
    assert main(["warehouse", "migrate", "--to", "mysql://x"]) == 2
    assert "names no known backend" in capsys.readouterr().err
