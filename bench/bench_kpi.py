"""KPI benchmark: a year of county data generated straight into the core tables, then the time
to recompute the year (one range pass, every feed + the pack) and one day, against a bare DuckDB
GROUP BY over the same rows.

    python -m bench.bench_kpi [--scale 0.1] [--home DIR] [--keep]

Targets (docs/kpis.md): a year of ~25 M rows <= 60 s, a day <= 5 s. ``--scale`` shortens the
period (0.1 = 37 days) for a quick run; every catalogue site is always present.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from citypipe.settings import get_settings
from transforms.daily import compute_day, compute_range
from warehouse.db import connect
from warehouse.dims import load_dim_site
from warehouse.migrate import migrate

YEAR_START = date(2026, 1, 1)

# Generators: one INSERT per feed, every catalogue site, readings at each site's own period.
# The bookkeeping columns are constants; values are deterministic functions of time and site.
COMMON = """
    '' as flags, true as is_valid, '' as failed_expectations,
    observed_at as received_at, 'bench' as content_hash, 'bench' as source_file,
    'bench' as validation_run_id, now() as loaded_at
"""

GEN_AIR = (
    """
insert into core.obs_air by name
with t as (
    select s.site_id, s.device_ids[1] as device_id, s.period_s,
        $start::timestamptz - interval 8 hour + to_seconds(i * s.period_s) as observed_at,
        i, hash(s.site_id) % 7 as k
    from core.dim_site s, range(0, $days * 86400 // 60) r(i)
    where s.kind = 'air_station'
)
select site_id, device_id, observed_at, timezone('Asia/Shanghai', observed_at)::date as local_date,
    period_s, i as seq,
    25 + k + 15 * sin(i / 1440.0 * 2 * pi()) + (i % 13) as pm25_ugm3,
    45 + k + 20 * sin(i / 1440.0 * 2 * pi()) + (i % 17) as pm10_ugm3,
    6 + (i % 5) as so2_ugm3, 22 + (i % 11) as no2_ugm3, 0.5 + (i % 7) / 20 as co_mgm3,
    60 + 40 * sin(i / 1440.0 * 2 * pi()) + (i % 9) as o3_ugm3,
    null::double as temp_c, null::double as rh_pct, null::double as wind_ms,
    null::double as wind_deg, null::double as pressure_hpa,
"""
    + COMMON
    + " from t"
)

GEN_WATERLOGGING = (
    """
insert into core.obs_waterlogging by name
with t as (
    select s.site_id, s.device_ids[1] as device_id, s.period_s,
        $start::timestamptz - interval 8 hour + to_seconds(i * s.period_s) as observed_at,
        i, hash(s.site_id) % 11 as k
    from core.dim_site s, range(0, $days * 86400 // 60) r(i)
    where s.kind = 'waterlogging_point'
)
select site_id, device_id, observed_at, timezone('Asia/Shanghai', observed_at)::date as local_date,
    period_s, i as seq,
    -- a 3-hour storm every 9 days from 14:00 local, deeper at some points
    case when (i // 1440) % 9 = k % 9 and i % 1440 between 840 and 1020
        then 5 + (20 + k * 2) * sin(pi() * (i % 1440 - 840) / 180.0)
        else 2 + (i % 3) end as depth_cm,
    0.0 as rain_mm,
"""
    + COMMON
    + " from t"
)

GEN_TRAFFIC = (
    """
insert into core.obs_traffic by name
with t as (
    select s.site_id, s.device_ids[1] as device_id, s.period_s, lane::smallint as lane,
        $start::timestamptz - interval 8 hour + to_seconds(i * s.period_s) as observed_at,
        i, s.free_flow_kmh as ff
    from core.dim_site s, range(0, $days * 86400 // 300) r(i), range(1, s.lanes + 1) l(lane)
    where s.kind = 'traffic_detector'
)
select site_id, device_id, lane, 'inbound' as direction, observed_at,
    timezone('Asia/Shanghai', observed_at)::date as local_date, period_s, i as seq,
    case when (i % 288) // 12 in (7, 8, 17, 18) then 40 + (i % 7) else 10 + (i % 5) end
        as volume_veh,
    case when (i % 288) // 12 in (7, 8, 17, 18) then ff * 0.55 + (i % 5) else ff * 0.9 end
        as speed_kmh,
    20.0 as occupancy_pct,
"""
    + COMMON
    + " from t"
)

GEN_WATER = (
    """
insert into core.obs_water by name
with t as (
    select s.site_id, s.device_ids[1] as device_id, s.period_s,
        $start::timestamptz - interval 8 hour + to_seconds(i * s.period_s) as observed_at,
        i, hash(s.site_id) % 5 as k
    from core.dim_site s, range(0, $days * 86400 // 14400) r(i)
    where s.kind in ('water_section', 'drinking_water_source')
)
select site_id, device_id, observed_at, timezone('Asia/Shanghai', observed_at)::date as local_date,
    period_s, i as seq,
    15.0 as water_temp_c, 7.2 + (i % 3) / 10 as ph, 7.8 - k * 0.5 as do_mgl,
    1.8 + k * 0.6 + (i % 4) / 10 as codmn_mgl, 0.12 + k * 0.1 as nh3n_mgl,
    0.02 + k * 0.02 as tp_mgl, 0.8 as tn_mgl, 300.0 as conductivity_uscm,
    5.0 as turbidity_ntu,
"""
    + COMMON
    + " from t"
)

BASELINE = (
    "select site_id, local_date, count(*), avg(pm25_ugm3), avg(o3_ugm3) from core.obs_air"
    " group by all",
    "select site_id, local_date, count(*), max(depth_cm) from core.obs_waterlogging group by all",
    "select site_id, local_date, count(*), sum(volume_veh), avg(speed_kmh) from core.obs_traffic"
    " group by all",
    "select site_id, local_date, count(*), avg(nh3n_mgl) from core.obs_water group by all",
)


def generate(con: duckdb.DuckDBPyConnection, days: int) -> dict[str, int]:
    params = {"start": datetime.combine(YEAR_START, datetime.min.time()), "days": days}
    counts = {}
    for feed, sql in (
        ("air", GEN_AIR),
        ("waterlogging", GEN_WATERLOGGING),
        ("traffic", GEN_TRAFFIC),
        ("water", GEN_WATER),
    ):
        con.execute(f"delete from core.obs_{feed}")  # fixed whitelist of feeds
        con.execute(sql, params)
        counts[feed] = con.execute(f"select count(*) from core.obs_{feed}").fetchone()[0]  # type: ignore[index]
    return counts


def timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the year (default 1)")
    p.add_argument("--home", type=Path, default=None, help="data directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated warehouse")
    args = p.parse_args(argv)
    days = max(2, round(365 * args.scale))
    home = args.home or Path(tempfile.mkdtemp(prefix="citypipe-bench-kpi-"))
    settings = get_settings(home=home)
    end = YEAR_START + timedelta(days=days - 1)
    con = connect(settings)
    try:
        migrate(con)
        load_dim_site(con, settings)
        t0 = time.perf_counter()
        counts = generate(con, days)
        gen_s = time.perf_counter() - t0
        rows = sum(counts.values())
        print(f"generated {rows:,} rows over {days} days in {gen_s:.1f} s: {counts}")
        con.execute("checkpoint")

        base_s = timed(lambda: [con.execute(q).fetchall() for q in BASELINE])
        print(f"bare GROUP BY (site, day) over the same rows: {base_s:.2f} s")

        range_s = timed(compute_range, con, YEAR_START, end, "bench")
        n_values = con.execute("select count(*) from kpi.kpi_values").fetchone()[0]  # type: ignore[index]
        print(
            f"range {YEAR_START}..{end} (all feeds + pack, {n_values:,} KPI values): "
            f"{range_s:.1f} s = {range_s / base_s:.1f} x the bare GROUP BY"
        )
        day_s = timed(compute_day, con, end, "bench-day")
        print(f"one day ({end}, daily path with dirty-day check): {day_s:.2f} s")
        again_s = timed(compute_range, con, YEAR_START, end, "bench-again")
        restated = con.execute("select count(*) from kpi.kpi_restatements").fetchone()[0]  # type: ignore[index]
        print(f"range again (idempotent): {again_s:.1f} s, restatements: {restated}")
        target_year = 60 * days / 365
        ok = range_s <= target_year and day_s <= 5
        print(
            f"targets: range <= {target_year:.0f} s (60 s per year, pro rata), day <= 5 s: "
            f"{'met' if ok else 'NOT met'}"
        )
    finally:
        con.close()
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
