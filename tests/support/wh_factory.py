"""Build landing-schema rows and Parquet files for warehouse tests (no broker, no simulator)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.schema import VALUE_COLUMNS, landing_schema

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A plausible baseline reading per feed; tests override single values to make them implausible.
BASE_VALUES: dict[str, dict[str, float]] = {
    "air": {
        "pm25_ugm3": 35.0,
        "pm10_ugm3": 58.0,
        "so2_ugm3": 7.0,
        "no2_ugm3": 24.0,
        "co_mgm3": 0.7,
        "o3_ugm3": 61.0,
        "temp_c": 12.0,
        "rh_pct": 70.0,
        "wind_ms": 1.5,
        "wind_deg": 90.0,
        "pressure_hpa": 990.0,
    },
    "water": {
        "water_temp_c": 15.0,
        "ph": 7.8,
        "do_mgl": 8.5,
        "codmn_mgl": 2.1,
        "nh3n_mgl": 0.2,
        "tp_mgl": 0.06,
        "tn_mgl": 1.2,
        "conductivity_uscm": 350.0,
        "turbidity_ntu": 12.0,
    },
    "waterlogging": {"depth_cm": 0.0, "rain_mm": 0.0},
    "traffic": {"volume_veh": 40.0, "speed_kmh": 38.0, "occupancy_pct": 9.0},
}
SITES = {
    "air": ("WS-AIR-01", "AQM-0101", 60),
    "water": ("WS-WAT-01", "WQA-0101", 14400),
    "waterlogging": ("WS-WLG-01", "WLG-0101", 60),
    "traffic": ("WS-TRF-01", "TRF-0101", 300),
}


def reading(
    feed: str,
    observed_at: datetime,
    *,
    site_id: str | None = None,
    device_id: str | None = None,
    period_s: int | None = None,
    seq: int = 1,
    flags: str = "",
    lane: int | None = None,
    received_at: datetime | None = None,
    **values: float | None,
) -> dict[str, Any]:
    site, dev, per = SITES[feed]
    row: dict[str, Any] = {
        "site_id": site_id or site,
        "device_id": device_id or dev,
        "lane": (lane or 1) if feed == "traffic" else None,
        "direction": "inbound" if feed == "traffic" else None,
        "seq": seq,
        "observed_at": observed_at,
        "period_s": period_s or per,
        "flags": flags,
        "received_at": received_at or observed_at + timedelta(seconds=5),
        "topic": f"city/wushan/{feed}/{site_id or site}",
        "local_date": observed_at.astimezone(SHANGHAI).date(),
    }
    vals = dict(BASE_VALUES[feed])
    vals.update(values)
    row.update(vals)
    key = "|".join(str(row[c]) for c in ("site_id", "device_id", "lane", "observed_at", "flags"))
    key += "|" + "|".join(str(vals[c]) for c in VALUE_COLUMNS[feed].values())
    row["content_hash"] = hashlib.sha256(key.encode()).hexdigest()[:32]
    return row


def series(
    feed: str, start: datetime, n: int, step_s: int | None = None, **kw: Any
) -> list[dict[str, Any]]:
    step = step_s or SITES[feed][2]
    return [reading(feed, start + timedelta(seconds=i * step), seq=i + 1, **kw) for i in range(n)]


def table(feed: str, rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=landing_schema(feed))


def write_landing(home: Path, feed: str, rows: list[dict[str, Any]]) -> list[Path]:
    """Write rows as landing files, one per local_date partition (as the ingest service does)."""
    t = table(feed, rows)
    out: list[Path] = []
    for d in sorted({r["local_date"] for r in rows}):
        part = t.filter(pa.compute.equal(t["local_date"], pa.scalar(d, pa.date32())))
        directory = home / "landing" / feed / f"local_date={d.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = directory / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        pq.write_table(part, path)
        out.append(path)
    return out
