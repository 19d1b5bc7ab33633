"""Time travel: the KPI pack of a day as published at an earlier instant (DuckLake backends), next
to the restatements recorded since; clear refusals on the single file, before the lake's
history and past the retention."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.kpi_history import SECTION, D, pack, publish_then_restate
from support.lake_catalog import shift_snapshots

from citypipe.cli import main
from common.settings import Settings
from transforms.published import NoSnapshotAt, TimeTravelUnavailable, pack_as_published
from warehouse import db, maintenance

KPI = SECTION

PACK_DDL = (
    "create schema if not exists kpi",
    "create table kpi.pack_values (kpi_id varchar not null, local_date date not null,"
    " dimension varchar not null, value double, value_text varchar, unit varchar,"
    " target double, status varchar not null, coverage_pct double, details json,"
    " computed_at timestamptz not null)",
    "create table kpi.restatements (kpi_id varchar not null, local_date date not null,"
    " dimension varchar not null, old_value double, new_value double, old_value_text varchar,"
    " new_value_text varchar, old_status varchar, restated_at timestamptz not null,"
    " reason varchar not null)",
)


def publish_then_restate_by_hand(settings: Settings) -> tuple[datetime, int]:
    """Hand-written pack rows: D's pack (section class I), then a restatement to IV. Returns
    an instant between the two and the last snapshot of the first publication. (The CLI tests
    need exact snapshot ids to move back in time; the real KPI run is tested above.)"""
    con = db.connect(settings)
    try:
        for stmt in PACK_DDL:
            con.execute(stmt)
        con.execute(
            "insert into kpi.pack_values values (?, ?, ?, 1.0, 'I', null, null, 'provisional',"
            " 100.0, '{}', now()), ('water.class_ii_share', ?, 'county', 100.0, '1/1', '%',"
            " 100.0, 'provisional', 100.0, '{}', now())",
            [KPI[0], D, KPI[1], D],
        )
        published = con.execute("select max(snapshot_id) from ducklake_snapshots('lake')")
        first = published.fetchone()
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        con.execute("begin")
        con.execute(
            "update kpi.pack_values set value = 4.0, value_text = 'IV'"
            " where kpi_id = ? and dimension = ?",
            list(KPI),
        )
        con.execute(
            "insert into kpi.restatements values (?, ?, ?, 1.0, 4.0, 'I', 'IV', 'provisional',"
            " now(), 'daily')",
            [KPI[0], D, KPI[1]],
        )
        con.execute("commit")
    finally:
        con.close()
    assert first is not None
    return between, int(first[0])


def section_class(kpis: list[dict[str, object]]) -> object:
    return next(k["value_text"] for k in kpis if (k["kpi_id"], k["dimension"]) == KPI)


@pytest.mark.backends("sqlite", "postgres")
def test_the_real_kpi_run_published_then_restated(wh, insert_obs, settings: Settings) -> None:
    """The KPI run publishes D, late data restates it: asked for the pack as published before
    the restatement, the lake answers with the old value; asked now, with the new one."""
    instants: list[datetime] = []

    def between() -> None:
        time.sleep(0.05)
        instants.append(datetime.now(UTC))
        time.sleep(0.05)

    publish_then_restate(wh, insert_obs, between)
    wh.close()

    then = pack_as_published(settings, D, instants[0])
    assert then.snapshot_time <= instants[0]
    assert section_class(then.kpis) == "I"
    assert (SECTION[0], "I", "IV", "daily") in [
        (r["kpi_id"], r["old_value_text"], r["new_value_text"], r["reason"])
        for r in then.restated_since
    ]
    now = pack_as_published(settings, D, datetime.now(UTC))
    assert now.snapshot_id > then.snapshot_id
    assert section_class(now.kpis) == "IV" and now.restated_since == []
    assert {k["kpi_id"] for k in now.kpis} == {k["kpi_id"] for k in then.kpis}
    # The current pack read the ordinary way is the one time travel gives for "now".
    with db.reader(settings) as con:
        assert pack(con) == pack_at(con, now.snapshot_id)


def pack_at(con, version: int) -> list[tuple[object, ...]]:
    return con.execute(
        "select * exclude (details), details::varchar from kpi.pack_values as p"
        " at (version => ?) order by kpi_id, local_date, dimension",
        [version],
    ).fetchall()


@pytest.mark.backends("sqlite", "postgres")
def test_the_pack_as_published_before_a_restatement(settings: Settings) -> None:
    between, first = publish_then_restate_by_hand(settings)

    then = pack_as_published(settings, D, between)
    assert then.snapshot_id == first and then.snapshot_time <= between
    assert section_class(then.kpis) == "I"
    assert len(then.kpis) == 2
    assert [
        (r["kpi_id"], r["old_value_text"], r["new_value_text"]) for r in then.restated_since
    ] == [(KPI[0], "I", "IV")]
    now = pack_as_published(settings, D, datetime.now(UTC))
    assert now.snapshot_id > first
    assert section_class(now.kpis) == "IV" and now.restated_since == []
    # The same instant in the city's zone reads the same snapshot.
    local = pack_as_published(settings, D, between.astimezone(ZoneInfo(settings.timezone)))
    assert local.snapshot_id == then.snapshot_id
    assert pack_as_published(settings, D, between, prefix="water.class").kpis[0]["value"] == 100.0

    with pytest.raises(NoSnapshotAt, match="history starts"):
        pack_as_published(settings, D, datetime(2020, 1, 1, tzinfo=UTC))


@pytest.mark.backends("sqlite")
def test_cli_as_published_on_a_date_and_its_limits(settings: Settings, capsys) -> None:
    _, first = publish_then_restate_by_hand(settings)
    # The first publication happened two days ago (local), the restatement today.
    shift_snapshots(settings, first, timedelta(days=2))
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    two_days_ago = (today - timedelta(days=2)).isoformat()

    assert (
        main(["kpis", "--date", D.isoformat(), "--as-published", two_days_ago, "--format", "json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["date"] == D.isoformat() and doc["count"] == 2
    assert doc["as_published"]["snapshot_id"] == first
    assert section_class(doc["kpis"]) == "I"
    assert [r["new_value_text"] for r in doc["restated_since"]] == ["IV"]

    assert main(["kpis", "--date", D.isoformat(), "--as-published", today.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "as published at" in out and " IV " in out and "restated since: nothing" in out

    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert main(["kpis", "--date", D.isoformat(), "--as-published", three_days_ago]) == 1
    err = capsys.readouterr().err
    assert "history starts" in err and "Traceback" not in err

    assert main(["kpis", "--date", D.isoformat(), "--as-published", "yesterday"]) == 2
    assert "expected YYYY-MM-DD" in capsys.readouterr().err

    # One day of retention: the maintenance expires the first publication's snapshots.
    maintenance.maintain(settings, retention_days=1, cleanup_grace=timedelta(0))
    assert main(["kpis", "--date", D.isoformat(), "--as-published", two_days_ago]) == 1
    err = capsys.readouterr().err
    assert "past the retention" in err and "Traceback" not in err
    # Today's pack is still there.
    assert main(["kpis", "--date", D.isoformat(), "--as-published", today.isoformat()]) == 0


@pytest.mark.backends("file")
def test_single_file_says_time_travel_needs_a_lake(settings: Settings, capsys) -> None:
    with pytest.raises(TimeTravelUnavailable):
        pack_as_published(settings, D, datetime.now(UTC))
    assert main(["kpis", "--date", D.isoformat(), "--as-published", "2026-06-11"]) == 2
    err = capsys.readouterr().err
    assert "time travel needs a DuckLake" in err and "Traceback" not in err
