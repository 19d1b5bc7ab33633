"""Landing-zone and quarantine Arrow schemas: the hand-off between ingestion and the warehouse.

Landing layout (one directory per feed and local natural day, Asia/Shanghai)::

    {home}/landing/{feed}/local_date=YYYY-MM-DD/part-{utc stamp}-{uuid}.parquet
    {home}/quarantine/received_date=YYYY-MM-DD/part-{utc stamp}-{uuid}.parquet

Files are written atomically (temp name, fsync, rename, fsync dir): a file that exists is complete.
Values are already in the contract's canonical units; column names carry the unit.
"""

from __future__ import annotations

import pyarrow as pa

# Canonical value columns per feed: contract field -> landing column (unit in the name).
VALUE_COLUMNS: dict[str, dict[str, str]] = {
    "air": {
        "pm25": "pm25_ugm3",
        "pm10": "pm10_ugm3",
        "so2": "so2_ugm3",
        "no2": "no2_ugm3",
        "co": "co_mgm3",
        "o3": "o3_ugm3",
        "temp_c": "temp_c",
        "rh_pct": "rh_pct",
        "wind_ms": "wind_ms",
        "wind_deg": "wind_deg",
        "pressure_hpa": "pressure_hpa",
    },
    "water": {
        "water_temp_c": "water_temp_c",
        "ph": "ph",
        "do": "do_mgl",
        "codmn": "codmn_mgl",
        "nh3n": "nh3n_mgl",
        "tp": "tp_mgl",
        "tn": "tn_mgl",
        "conductivity": "conductivity_uscm",
        "turbidity": "turbidity_ntu",
    },
    "waterlogging": {
        "depth_cm": "depth_cm",
        "rain_mm": "rain_mm",
    },
    "traffic": {
        "volume": "volume_veh",
        "speed_kmh": "speed_kmh",
        "occupancy_pct": "occupancy_pct",
    },
}

# Columns every landing file has, in this order, before the feed's value columns.
COMMON_FIELDS: list[pa.Field] = [
    pa.field("site_id", pa.string(), nullable=False),
    pa.field("device_id", pa.string(), nullable=False),
    # Traffic only (1 = nearest the kerb); null for other feeds. Part of the natural key.
    pa.field("lane", pa.int16()),
    pa.field("direction", pa.string()),
    pa.field("seq", pa.int64(), nullable=False),
    # End of the averaging period, UTC.
    pa.field("observed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("period_s", pa.int32(), nullable=False),
    # Device status flags, sorted and joined with "|" ("" when none): maintenance, calibration, power_fail.
    pa.field("flags", pa.string(), nullable=False),
    pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("topic", pa.string(), nullable=False),
    # Hash of the canonical reading (key + converted values + flags): equal hash = exact re-delivery.
    pa.field("content_hash", pa.string(), nullable=False),
    # Natural day in the city's time zone (Asia/Shanghai); also the partition directory.
    pa.field("local_date", pa.date32(), nullable=False),
]


def landing_schema(feed: str) -> pa.Schema:
    values = [pa.field(col, pa.float64()) for col in VALUE_COLUMNS[feed].values()]
    return pa.schema([*COMMON_FIELDS, *values], metadata={"feed": feed, "contract": f"{feed}/v1"})


NATURAL_KEY = ("site_id", "device_id", "lane", "observed_at")  # plus the feed (the directory)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        # Parsed from the topic where possible; null when the topic itself is bad.
        pa.field("feed", pa.string()),
        pa.field("site_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        # Position of the reading inside a batch (array payload); null for a whole-message reason.
        pa.field("reading_index", pa.int32()),
        # Raw bytes as received; for one bad reading inside a batch, that reading re-encoded as JSON
        # (so a large batch with many bad readings is not stored many times).
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("payload_bytes", pa.int64(), nullable=False),
        # Local day (Asia/Shanghai) of received_at; also the partition directory.
        pa.field("received_date", pa.date32(), nullable=False),
    ]
)
