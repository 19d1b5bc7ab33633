"""Fixtures for the KPI tests: a real warehouse file (warehouse migrations + dim_site from the
catalogue) and a helper that inserts core observations with the contract's bookkeeping columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone

import duckdb
import pytest

from common.migrate import migrate
from common.settings import Settings
from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS
from warehouse.db import connect
from warehouse.dims import load_dim_site

CST = timezone(timedelta(hours=8))

VALUE_COLUMNS = {
    "air": ("pm25_ugm3", "pm10_ugm3", "so2_ugm3", "no2_ugm3", "co_mgm3", "o3_ugm3"),
    "water": (
        "water_temp_c",
        "ph",
        "do_mgl",
        "codmn_mgl",
        "nh3n_mgl",
        "tp_mgl",
        "tn_mgl",
        "conductivity_uscm",
        "turbidity_ntu",
    ),
    "waterlogging": ("depth_cm", "rain_mm"),
    "traffic": ("volume_veh", "speed_kmh", "occupancy_pct"),
}

# One literal statement per feed (SQL is never built from strings).
INSERT_SQL = {
    "air": "insert into core.obs_air by name select * from new_rows",
    "water": "insert into core.obs_water by name select * from new_rows",
    "waterlogging": "insert into core.obs_waterlogging by name select * from new_rows",
    "traffic": "insert into core.obs_traffic by name select * from new_rows",
}

Inserter = Callable[[str, Iterable[Mapping[str, object]]], int]


@pytest.fixture
def wh(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(settings, read_only=False)
    migrate(con, WAREHOUSE_MIGRATIONS)
    load_dim_site(con, settings)
    yield con
    con.close()


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """A China Standard Time instant."""
    return datetime(y, mo, d, h, mi, s, tzinfo=CST)


def make_rows(feed: str, rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    out = []
    for i, r in enumerate(rows):
        obs: datetime = r["observed_at"]  # type: ignore[assignment]
        row: dict[str, object] = {
            "site_id": r["site_id"],
            "device_id": r.get("device_id", "DEV-" + str(r["site_id"])),
            "observed_at": obs,
            "local_date": obs.astimezone(CST).date(),
            "period_s": r.get("period_s", 60),
            "seq": r.get("seq", i),
            "flags": r.get("flags", ""),
            "is_valid": r.get("is_valid", True),
            "failed_expectations": r.get("failed_expectations", ""),
            "received_at": r.get("received_at", datetime(2026, 1, 1, tzinfo=UTC)),
            "content_hash": "h",
            "source_file": "test",
            "validation_run_id": "test",
            "loaded_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
        if feed == "traffic":
            row["lane"] = r.get("lane", 1)
            row["direction"] = r.get("direction", "inbound")
        for c in VALUE_COLUMNS[feed]:
            row[c] = r.get(c)
        out.append(row)
    return out


@pytest.fixture
def insert_obs(wh: duckdb.DuckDBPyConnection) -> Inserter:
    def _insert(feed: str, rows: Iterable[Mapping[str, object]]) -> int:
        import pyarrow as pa

        data = make_rows(feed, rows)
        if not data:
            return 0
        tbl = pa.Table.from_pylist(data)
        wh.register("new_rows", tbl)
        try:
            wh.execute(INSERT_SQL[feed])
        finally:
            wh.unregister("new_rows")
        return len(data)

    return _insert


@pytest.fixture
def day() -> date:
    return date(2026, 6, 10)
