"""Late data (issue 13): a gateway that was offline flushes its backlog as batch payloads (JSON
arrays, docs/feeds.md "Payload") after the KPIs of those days were computed from partial data.

``Traffic`` builds the readings of a few Wushan sites over some local days, with values that
change over the day (so a KPI over half a day differs from one over the whole day), and splits
them into what reached the broker on time and the gateway's backlog."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common.settings import REPO_ROOT, Settings
from simulator.broker import BrokerHandle

CST = timezone(timedelta(hours=8))
CITY = "wushan"
BATCH = 100  # readings per backlog message, as a gateway flushes (docs/feeds.md: up to 1000)

# (feed, site_id, device_id, lane, period_s) from the Wushan catalogue.
Stream = tuple[str, str, str, int | None, int]
GATEWAY: list[Stream] = [  # behind the gateway that goes offline
    ("air", "WS-AIR-01", "AQM-0101", None, 60),
    ("traffic", "WS-TRF-01", "TRF-0101", 1, 300),
    ("traffic", "WS-TRF-01", "TRF-0101", 2, 300),
    ("waterlogging", "WS-WLG-01", "WLG-0101", None, 60),
]
ON_TIME: list[Stream] = [  # publish directly, never late
    ("air", "WS-AIR-02", "AQM-0201", None, 60),
    ("traffic", "WS-TRF-02", "TRF-0201", 1, 300),
    ("traffic", "WS-TRF-02", "TRF-0201", 2, 300),
    ("waterlogging", "WS-WLG-02", "WLG-0201", None, 60),
]
# The full scale adds the county's other air stations and a third detector and point, half of
# them behind the gateway.
MORE_GATEWAY: list[Stream] = [
    ("air", "WS-AIR-03", "AQM-0301", None, 60),
    ("waterlogging", "WS-WLG-03", "WLG-0301", None, 60),
]
MORE_ON_TIME: list[Stream] = [
    ("air", "WS-AIR-04", "AQM-0401", None, 60),
    ("traffic", "WS-TRF-03", "TRF-0301", 1, 300),
    ("traffic", "WS-TRF-03", "TRF-0301", 2, 300),
]


def _values(feed: str, at: datetime, stream: Stream) -> dict[str, float]:
    """Values that depend on the local hour: afternoons are dirtier, busier and (on the gateway's
    waterlogging point) flooded by a storm, so the missing afternoon changes the KPIs."""
    h = at.hour + at.minute / 60
    bump = 1.0 if 12 <= h < 20 else 0.0
    wave = math.sin(h / 24 * 2 * math.pi)
    if feed == "air":
        pm25 = round(30 + 60 * bump + 8 * wave, 1)
        return {
            "pm25": pm25,
            "pm10": round(pm25 * 1.6, 1),
            "so2": 7.0,
            "no2": round(24 + 20 * bump, 1),
            "co": 0.7,
            "o3": round(61 + 90 * bump, 1),
        }
    if feed == "waterlogging":
        storm = stream[1] == GATEWAY[3][1] and 14 <= h < 16
        return {"depth_cm": round(25.0 * math.sin((h - 14) / 2 * math.pi), 1) if storm else 0.0}
    return {
        "volume": float(round(40 + 80 * bump)),
        "speed_kmh": round(45 - 20 * bump, 1),
        "occupancy_pct": round(9 + 25 * bump, 1),
    }


def _doc(stream: Stream, seq: int, at: datetime) -> dict[str, Any]:
    feed, site, device, lane, period = stream
    doc: dict[str, Any] = {
        "schema": f"{feed}/v1",
        "site_id": site,
        "device_id": device,
        "seq": seq,
        "observed_at": at.isoformat(),
        "period_s": period,
        "values": _values(feed, at, stream),
        "flags": [],
    }
    if lane is not None:
        doc["lane"] = lane
        doc["direction"] = "inbound"
    return doc


def topic(stream: Stream) -> str:
    return f"city/{CITY}/{stream[0]}/{stream[1]}"


@dataclass
class Traffic:
    """Readings of ``days`` (local days); the gateway's streams are offline from ``offline_from``
    until ``offline_until`` (local times): those readings are the backlog."""

    # Single-reading messages by the local day of their reading.
    on_time: dict[date, list[tuple[str, bytes]]] = field(default_factory=dict)
    backlog: list[tuple[str, bytes]] = field(default_factory=list)  # batches of BATCH readings
    backlog_readings: int = 0
    readings: int = 0
    backlog_days: set[date] = field(default_factory=set)


def make_traffic(
    days: list[date], offline_from: datetime, offline_until: datetime, *, full: bool
) -> Traffic:
    out = Traffic()
    gateway = GATEWAY + (MORE_GATEWAY if full else [])
    streams = gateway + ON_TIME + (MORE_ON_TIME if full else [])
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=CST)
    end = start + timedelta(days=len(days))
    for stream in streams:
        late: list[dict[str, Any]] = []
        # One counter per device: the lanes of a detector share it (lane 2 after lane 1).
        seq = 1 + (stream[3] or 1) - 1
        step = 2 if stream[3] is not None else 1
        at = start
        while at < end:
            doc = _doc(stream, seq, at)
            seq += step
            out.readings += 1
            if stream in gateway and offline_from <= at < offline_until:
                late.append(doc)
                out.backlog_days.add(at.date())
            else:
                msg = (topic(stream), json.dumps(doc).encode())
                out.on_time.setdefault(at.date(), []).append(msg)
            at += timedelta(seconds=stream[4])
        out.backlog_readings += len(late)
        for i in range(0, len(late), BATCH):
            out.backlog.append((topic(stream), json.dumps(late[i : i + BATCH]).encode()))
    return out


def kpi_run(day: date) -> str:
    """`citypipe run citypipe_daily_kpis --date D` (a real Airflow dag.test, in a subprocess with
    the test's environment)."""
    out = subprocess.run(
        [sys.executable, "-m", "citypipe.cli", "run", "citypipe_daily_kpis", "--date", str(day)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


def kpi_steps(settings: Settings, day: date, reason: str, *, publish: bool = False) -> None:
    """The same DAG's tasks (plan, compute, publish_pack) in this process: the CI size's way to
    run the KPIs that are not the point of the case (an Airflow run costs tens of seconds, and
    minutes on two shared cores under load)."""
    from steps import kpis

    result = kpis.compute(settings, kpis.plan(settings, {"date": day.isoformat()}, None), reason)
    if publish:
        kpis.publish_pack(settings, result)


def retained_pack(handle: BrokerHandle, timeout_s: float = 5.0) -> dict[str, dict[str, Any]]:
    """What the broker retains under city/wushan/kpi/+/+: topic -> payload."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: dict[str, dict[str, Any]] = {}
    idle = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rel-late-observer")
    if handle.username:
        client.username_pw_set(handle.username)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            got[msg.topic] = json.loads(msg.payload)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(f"city/{CITY}/kpi/+/+", qos=1)
    client.connect(handle.host, handle.port)
    client.loop_start()
    try:
        # Retained messages arrive at once after the subscription; wait until none came lately.
        seen = -1
        while seen != len(got):
            seen = len(got)
            idle.wait(timeout_s if seen == 0 else 1.0)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def landing_files(home: Path) -> list[Path]:
    return sorted((home / "landing").rglob("part-*.parquet"))
