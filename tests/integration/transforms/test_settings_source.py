"""Settings are the only source of the reference folder: a deployment that moves its reference
data (CITYPIPE_REFERENCE_DIR) gets the standards from there too, and a KPI run loads them once."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from test_cli_dag import seed  # same folder

import transforms.prepare
from common.settings import REPO_ROOT, Settings, get_settings
from transforms.daily import compute_day

D = date(2026, 6, 10)
CST = timezone(timedelta(hours=8))


@pytest.fixture
def moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """The reference folder copied elsewhere, its good-days target changed 96 -> 90 (the repo's
    folder still says 96)."""
    ref = tmp_path / "moved-reference"
    shutil.copytree(REPO_ROOT / "reference", ref)
    targets = ref / "standards" / "kpi_targets.csv"
    text = targets.read_text(encoding="utf-8")
    assert "air.good_days_ratio,96," in text
    targets.write_text(text.replace("air.good_days_ratio,96,", "air.good_days_ratio,90,"))
    monkeypatch.setenv("CITYPIPE_REFERENCE_DIR", str(ref))
    return get_settings()


def test_a_moved_reference_folder_is_honoured_by_the_kpi_run(
    moved: Settings, wh: duckdb.DuckDBPyConnection, insert_obs
) -> None:
    seed(insert_obs, D)
    summary = compute_day(wh, D, "test", as_of=datetime(2026, 6, 11, 1, tzinfo=CST))
    assert summary.n_values > 0
    target = wh.execute(
        "select target from kpi.pack_values"
        " where kpi_id = 'air.good_days_ratio' and dimension = 'county' and local_date = ?",
        [D],
    ).fetchone()
    assert target == (90.0,)
    # every ref table is the moved folder's CSV, row for row
    for csv in sorted((moved.reference_dir / "standards").glob("*.csv")):
        # the table name is bound, not formatted in: query_table() takes it as a value
        n = wh.execute("select count(*) from query_table($t)", {"t": "ref." + csv.stem}).fetchone()
        assert n == (len(csv.read_text(encoding="utf-8").splitlines()) - 1,), csv.name


def test_a_kpi_run_loads_the_reference_tables_once(
    settings: Settings, wh: duckdb.DuckDBPyConnection, insert_obs, monkeypatch
) -> None:
    seed(insert_obs, D)
    loads: list[Path] = []
    real = transforms.prepare.load_standards

    def counting(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, int]:
        loads.append(directory)
        return real(con, directory)

    monkeypatch.setattr(transforms.prepare, "load_standards", counting)
    compute_day(wh, D, "test")
    compute_day(wh, D + timedelta(days=1), "test")
    assert loads == [settings.reference_dir / "standards"] * 2  # once per run, from settings


def test_the_settings_time_zone_cuts_the_hours(
    settings: Settings, wh: duckdb.DuckDBPyConnection, insert_obs, monkeypatch
) -> None:
    # Settings are the only source of the zone: the same reading at 10:05 China time falls in
    # the local hour 10 by default and in hour 02 when the deployment's zone is UTC.
    from test_traffic import ARTERIAL, detector_hour, reading

    from transforms.traffic import compute_traffic_range

    insert_obs("traffic", [reading(ARTERIAL, D, 10, 5, 12, 45.0)])
    compute_traffic_range(wh, D, D)
    assert detector_hour(wh, ARTERIAL, D, 10)[0] == 45.0
    monkeypatch.setenv("CITYPIPE_TIMEZONE", "UTC")
    compute_traffic_range(wh, D, D)
    assert detector_hour(wh, ARTERIAL, D, 10) is None
    assert detector_hour(wh, ARTERIAL, D, 2)[0] == 45.0
