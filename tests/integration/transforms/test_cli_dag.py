"""`citypipe kpis` output (stable JSON keys), `citypipe backfill`, and the daily KPI DAG run end
to end through the DAG runner (`citypipe run citypipe_daily_kpis --date D`: real dag.test)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from citypipe.cli import main
from common.settings import Settings
from steps.kpis import target_day
from transforms.cli import KPI_KEYS
from transforms.daily import compute_day
from warehouse import db

# The KPI commands on the single file and on DuckLake-on-PostgreSQL; the DAG runs (end to end)
# on all three backends.
pytestmark = pytest.mark.backends("file", "postgres")

CST = timezone(timedelta(hours=8))
D = date(2026, 6, 10)
REQUIRED_IDS = {
    "air.aqi", "air.good_days_ratio", "air.pm25", "water.section_class",
    "water.class_ii_share", "water.drinking_source_compliance", "waterlogging.events",
    "traffic.tpi",
}  # fmt: skip


def seed(insert_obs, d: date) -> None:
    base = datetime(d.year, d.month, d.day, tzinfo=CST)
    insert_obs(
        "water",
        [
            {"site_id": s, "observed_at": base + timedelta(hours=4 * i), "period_s": 14400,
             "ph": 7.2, "do_mgl": 7.0, "codmn_mgl": 3.0, "nh3n_mgl": 0.3, "tp_mgl": 0.05}
            for s in ("WS-WAT-01", "WS-DWS-01")
            for i in range(6)
        ],
    )  # fmt: skip
    insert_obs(
        "traffic",
        [
            {"site_id": "WS-TRF-14", "observed_at": base + timedelta(hours=h), "period_s": 300,
             "lane": 1, "volume_veh": 40.0, "speed_kmh": 45.0, "occupancy_pct": 12.0}
            for h in range(24)
        ],
    )  # fmt: skip
    insert_obs(
        "air",
        [
            {"site_id": s, "observed_at": base + timedelta(minutes=m), "pm25_ugm3": 30.0,
             "pm10_ugm3": 50.0, "so2_ugm3": 8.0, "no2_ugm3": 20.0, "co_mgm3": 0.6,
             "o3_ugm3": 60.0}
            for s in ("WS-AIR-01", "WS-AIR-02", "WS-AIR-03", "WS-AIR-04")
            for m in range(1440)
        ],
    )  # fmt: skip


def test_target_day_rule() -> None:
    run_at = datetime(2026, 6, 11, 1, 0, tzinfo=CST)  # the 01:00 run of June 11
    assert target_day({}, run_at, "Asia/Shanghai") == D
    assert target_day({"date": "2026-03-01"}, run_at, "Asia/Shanghai") == date(2026, 3, 1)
    # 17:00 UTC on June 10 is 01:00 on June 11 in China: still D.
    utc = datetime(2026, 6, 10, 17, 0, tzinfo=timezone.utc)  # noqa: UP017
    assert target_day(None, utc, "Asia/Shanghai") == D


def test_kpis_json_and_table(
    wh: duckdb.DuckDBPyConnection, insert_obs, settings: Settings, capsys
) -> None:
    seed(insert_obs, D)
    compute_day(wh, D, "test")
    wh.close()
    assert main(["kpis", "--date", D.isoformat(), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["date", "count", "kpis"] and doc["date"] == "2026-06-10"
    assert all(tuple(k) == KPI_KEYS for k in doc["kpis"])
    assert {k["kpi_id"] for k in doc["kpis"]} >= REQUIRED_IDS
    by = {(k["kpi_id"], k["dimension"]): k for k in doc["kpis"]}
    aqi = by[("air.aqi", "county")]
    assert aqi["value"] is not None and aqi["details"]["rule_set"] == "HJ633-2026"
    assert {"category_zh", "primary_pollutants"} <= set(aqi["details"])
    good = by[("air.good_days_ratio", "county")]
    assert good["target"] == 96.0 and "remaining_nongood_budget_days" in good["details"]
    assert by[("water.section_class", "WS-WAT-01")]["value_text"] == "II"
    assert by[("water.drinking_source_compliance", "county")]["value"] == 100.0
    assert by[("traffic.tpi", "county")]["unit"] == "TPI"
    assert main(["kpis", "--date", D.isoformat(), "--kpi", "water."]) == 0
    table = capsys.readouterr().out
    assert "water.class_ii_share" in table and "air.aqi" not in table
    assert main(["kpis", "--date", "2026-01-01", "--format", "json"]) == 1


def test_backfill_command(wh, insert_obs, settings: Settings, capsys) -> None:
    seed(insert_obs, D)
    seed(insert_obs, D + timedelta(days=1))
    wh.close()
    args = ["backfill", "--start", "2026-06-09", "--end", "2026-06-11", "--chunk-days", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("computed 2026-06-09..2026-06-10 (2 days)")
    assert out[1].startswith("computed 2026-06-11..2026-06-11 (1 day)")
    assert out[2].startswith("citypipe backfill 2026-06-09..2026-06-11: 3 days")
    assert main(args) == 0
    assert "0 restatements" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.backends("file", "sqlite", "postgres")
def test_daily_kpis_dag_run(wh, insert_obs, settings: Settings) -> None:
    from citypipe.rundag import run_dag

    seed(insert_obs, D)
    wh.close()
    assert run_dag(settings, "citypipe_daily_kpis", D) == 0
    with db.reader(settings) as con:
        runs = con.execute("select reason, start_date, end_date from kpi.runs").fetchall()
        assert len(runs) == 1 and runs[0][0].startswith("citypipe_daily_kpis ")
        assert runs[0][1:] == (D, D)
        ids = {r[0] for r in con.execute(
            "select kpi_id from kpi.pack_values where local_date = ?", [D]).fetchall()}  # fmt: skip
        assert ids >= REQUIRED_IDS


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.backends("file", "sqlite", "postgres")
def test_a_day_before_the_dag_start_date_fails_loudly(wh, settings: Settings, capfd) -> None:
    # Airflow creates no task for a logical date before the DAG's start_date and reports the
    # empty run as a success: the runner must refuse it instead (2022 days ran nothing so).
    from citypipe.rundag import run_dag

    wh.close()
    assert run_dag(settings, "citypipe_daily_kpis", date(2011, 12, 31)) == 1
    err = capfd.readouterr().err
    assert "2011-12-31 is before the DAG's start_date 2012-01-01" in err
    with db.reader(settings) as con:
        # nothing computed: the KPI models never even created their schema
        kpi = "select count(*) from information_schema.tables where table_schema = 'kpi'"
        assert con.execute(kpi).fetchone() == (0,)
