"""A small real KPI history on any backend: day D published, then late data restates it.

Observations go in through the ``insert_obs`` fixture, the KPIs through the real KPI run
(``transforms.daily.compute_day``), so ``kpi.pack_values``, ``kpi.restatements``, ``kpi.runs``,
the marts and the ``ref`` tables are what production writes. Lake-safe SQL only (no upsert).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import duckdb

from transforms.daily import compute_day

CST = timezone(timedelta(hours=8))
D = date(2026, 6, 10)
AS_OF = datetime(2026, 6, 11, 1, 0, tzinfo=CST)
SECTION = ("water.section_class", "WS-WAT-01")


def water(site: str, d: date, **values: float) -> list[dict[str, object]]:
    v = {"ph": 7.5, "do_mgl": 8.0, "codmn_mgl": 1.5, "nh3n_mgl": 0.1, "tp_mgl": 0.01, **values}
    base = datetime(d.year, d.month, d.day, tzinfo=CST)
    return [
        {"site_id": site, "observed_at": base + timedelta(hours=4 * i), "period_s": 14400, **v}
        for i in range(6)
    ]


def day_data(insert_obs: Callable[..., int], d: date) -> None:
    insert_obs("water", water("WS-WAT-01", d) + water("WS-DWS-01", d))
    insert_obs(
        "traffic",
        [
            {
                "site_id": "WS-TRF-01",
                "observed_at": datetime(d.year, d.month, d.day, h, 30, tzinfo=CST),
                "period_s": 300,
                "lane": 1,
                "volume_veh": 50.0,
                "speed_kmh": 25.0,
                "occupancy_pct": 20.0,
            }
            for h in range(24)
        ],
    )


def mark_dirty(con: duckdb.DuckDBPyConnection, feed: str, d: date) -> None:
    now = datetime.now(UTC)
    con.execute("begin")
    con.execute("delete from core.dirty_days where feed = ? and local_date = ?", [feed, d])
    con.execute("insert into core.dirty_days values (?, ?, ?, ?, null)", [feed, d, now, now])
    con.execute("commit")


def publish_then_restate(
    wh: duckdb.DuckDBPyConnection,
    insert_obs: Callable[..., int],
    between: Callable[[], None] | None = None,
) -> None:
    """D is computed and published (river section Class I); ``between()`` runs; then a late
    revision (NH3-N 1.2) makes the next day's run restate D's section to Class IV."""
    day_data(insert_obs, D)
    compute_day(wh, D, "daily", as_of=AS_OF)
    if between is not None:
        between()
    nxt = D + timedelta(days=1)
    day_data(insert_obs, nxt)
    wh.execute(
        "update core.obs_water set nh3n_mgl = 1.2 where site_id = 'WS-WAT-01' and local_date = ?",
        [D],
    )
    mark_dirty(wh, "water", D)
    mark_dirty(wh, "water", nxt)
    summary = compute_day(wh, nxt, "daily", as_of=AS_OF + timedelta(days=1))
    assert summary.n_restatements > 0, "the late data should have restated D"


def pack(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """Every pack row, in a stable order (for before/after comparisons)."""
    return con.execute(
        "select * exclude (details), details::varchar from kpi.pack_values"
        " order by kpi_id, local_date, dimension"
    ).fetchall()
