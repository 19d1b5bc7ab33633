"""A warehouse for the data-quality report, built by the real load chain (GX validation, load,
quarantine, dq, Data Docs): one day of one site per feed (air WS-AIR-01 flat-lined, with one
reading out of range), a second air station whose ``seq`` loses readings twice around a
reboot, and quarantined messages, one with markup and script in every text field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.settings import Settings
from expectations import docs
from ingestion.schema import QUARANTINE_SCHEMA
from support.serving_helpers import day_start, land_day, load
from support.wh_factory import reading, write_landing
from warehouse.followups import set_data_docs_urls

DAY = date(2026, 11, 21)
HOURS = 6
GAP_SITE, GAP_DEVICE = "WS-AIR-02", "AQM-0201"
# Markup in a stored field: the page must show it as text (issue 13 injects it everywhere).
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@dataclass(frozen=True)
class SeqPlan:
    """What the second station's counter did on DAY (minutes after 00:00 local)."""

    readings: int = 352  # 360 minutes less the 8 lost
    missing: int = 8  # seq 101-103 and seq 101-105 (after the reboot)
    gaps: int = 2
    resets: int = 1


def gap_station_rows() -> list[dict[str, Any]]:
    """Minutes 0-99 seq 1-100; 100-102 lost (seq 101-103); 103-199 seq 104-200; a reboot at
    minute 200: seq 1-100 again; 300-304 lost (seq 101-105); 305-359 seq 106-160. Values vary
    (no flat-line, no spike)."""
    seq_by_minute: dict[int, int] = {}
    seq_by_minute.update({m: m + 1 for m in range(100)})
    seq_by_minute.update({m: m + 1 for m in range(103, 200)})
    seq_by_minute.update({m: m - 199 for m in range(200, 300)})
    seq_by_minute.update({m: m - 199 for m in range(305, 360)})
    start = day_start(DAY)
    return [
        reading(
            "air",
            start + timedelta(minutes=m + 1),
            site_id=GAP_SITE,
            device_id=GAP_DEVICE,
            seq=s,
            pm25_ugm3=30.0 + m % 7,
            pm10_ugm3=60.0 + m % 5,
            no2_ugm3=20.0 + m % 3,
            o3_ugm3=50.0 + m % 11,
        )
        for m, s in sorted(seq_by_minute.items())
    ]


def write_quarantine(settings: Settings) -> None:
    """Two quarantined messages received on DAY: one plain, one with markup in every field."""
    received = day_start(DAY) + timedelta(hours=3)
    base = {
        "received_at": received,
        "topic": "city/wushan/air/WS-AIR-01",
        "feed": "air",
        "site_id": "WS-AIR-01",
        "reading_index": None,
        "received_date": DAY,
    }
    rows = [
        {**base, "reason": "bad_json", "detail": "Expecting value: line 1", "payload": b"{nope"},
        {
            **base,
            "topic": f"city/wushan/air/{XSS}",
            "reason": XSS,
            "detail": XSS,
            "payload": XSS.encode(),
            "received_at": received + timedelta(seconds=1),
        },
    ]
    for r in rows:
        r["payload_bytes"] = len(r["payload"])
    folder = settings.home / "quarantine" / f"received_date={DAY.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
    pq.write_table(table, folder / "part-20261121T030000Z-quality.parquet")


def build_quality(settings: Settings) -> None:
    land_day(settings, DAY, hours=HOURS)
    write_landing(settings.home, "air", gap_station_rows())
    write_quarantine(settings)
    load(settings, "quality-seed")
    # What the DAG's last task does: render the site and store each run's page.
    _, pages = docs.build(settings.gx_dir)
    set_data_docs_urls(settings, pages)
    assert pages, "Data Docs built no validation page"
