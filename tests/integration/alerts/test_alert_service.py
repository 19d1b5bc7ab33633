"""`citypipe alerts` as a real process on a real Mosquitto: a depth curve and a DO curve published
as sensors do, the retained alert messages, the clear, and the store after a restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alerts_helpers import AlertsProcess, AlertWatcher, reading, retained
from support.ingest_fixtures import publish

from alerts.store import read_changes, read_open, read_recent, store_path
from common.settings import REPO_ROOT, Settings
from simulator.broker import BrokerHandle

pytestmark = pytest.mark.integration

WLG, WLG_DEV = "WS-WLG-01", "WLG-0101"
WAT, WAT_DEV = "WS-WAT-01", "WQA-0101"
T_WLG = f"city/wushan/alert/waterlogging/{WLG}"
T_DO = f"city/wushan/alert/dissolved_oxygen/{WAT}"


def depth_messages(start: datetime, curve: list[float], seq0: int = 0) -> list[tuple[str, bytes]]:
    return [
        (
            f"city/wushan/waterlogging/{WLG}",
            reading("waterlogging", WLG, WLG_DEV, seq0 + k, start + timedelta(minutes=k), 60, {"depth_cm": d}),
        )
        for k, d in enumerate(curve)
    ]  # fmt: skip


def do_messages(start: datetime, curve: list[float], seq0: int = 0) -> list[tuple[str, bytes]]:
    return [
        (
            f"city/wushan/water/{WAT}",
            reading("water", WAT, WAT_DEV, seq0 + k, start + timedelta(hours=4 * k), 14400, {"do": v, "ph": 7.2}),
        )
        for k, v in enumerate(curve)
    ]  # fmt: skip


def on(topic: str, msgs: list[tuple[float, str, bytes, bool]]) -> list[dict | None]:
    return [json.loads(p) if p else None for _, t, p, _ in msgs if t == topic]


def test_depth_and_do_curves_raise_publish_clear_and_survive_a_restart(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    b = mosquitto_broker
    home = settings.home
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    wl_start = now - timedelta(hours=2)
    do_start = now - timedelta(days=4)
    watcher = AlertWatcher(b.host, b.port)
    service = AlertsProcess(home, b.url)
    service.wait_connected()

    # Depth: dry, rise to 30 cm (raise at the 3rd reading above 15, closure at the 3rd above
    # 25), then oscillate 14 / 16 around 15 for 20 minutes: inside level 1's 2 cm margin, so it
    # never clears nor re-raises; below 25 - 2 for 10 readings, so it steps down to level 1.
    rise = [0.0, 5.0, 12.0, 16.0, 18.0, 21.0, 26.0, 28.0, 30.0, 30.0]
    wobble = [14.0 if k % 2 else 16.0 for k in range(20)]
    # DO: healthy, one low result (not confirmed), then a confirmed drop below 2 mg/L.
    do_curve = [7.0, 6.5, 1.8, 6.0, 1.9, 1.6, 1.9]
    publish(b, depth_messages(wl_start, rise + wobble) + do_messages(do_start, do_curve))
    msgs = watcher.wait_for(lambda m: len(on(T_WLG, m)) >= 3 and len(on(T_DO, m)) >= 1)
    wl_live = on(T_WLG, msgs)
    assert [(m["level"], m["value"], m["threshold"]) for m in wl_live] == [  # type: ignore[index]
        ("waterlogging", 21.0, 15.0),
        ("closure", 30.0, 25.0),
        ("waterlogging", 14.0, 15.0),
    ]
    first = wl_live[0]
    assert first is not None
    assert set(first) >= {"id", "kind", "level", "site_id", "value", "unit", "threshold",
                          "started_at", "cleared_at"}  # fmt: skip
    assert first["kind"] == "waterlogging" and first["site_id"] == WLG and first["unit"] == "cm"
    assert first["cleared_at"] is None
    assert first["started_at"] == (wl_start + timedelta(minutes=3)).isoformat().replace(
        "+00:00", ".000Z"
    )
    do_live = on(T_DO, msgs)
    assert [(m["level"], m["value"]) for m in do_live] == [("below_class_v", 1.6)]  # type: ignore[index]

    # Restart: the open alerts come back from the store; nothing is raised twice.
    assert service.stop() == 0
    open_before = {(a.kind, a.site_id): a for a in read_open(store_path(home))}
    assert set(open_before) == {("waterlogging", WLG), ("dissolved_oxygen", WAT)}
    service = AlertsProcess(home, b.url)
    service.wait_connected()
    n_before = len(watcher.messages)

    # Depth falls and stays dry 10 readings: one clear (an empty retained message). DO recovers.
    fall = [12.0] * 12
    publish(b, depth_messages(wl_start + timedelta(minutes=30), fall, seq0=30))
    publish(b, do_messages(do_start + timedelta(hours=28), [2.5, 5.0, 6.0], seq0=7))
    msgs = watcher.wait_for(
        lambda m: (
            any(t == T_WLG and p == b"" for _, t, p, _ in m[n_before:])
            and any(t == T_DO and p == b"" for _, t, p, _ in m[n_before:])
        )
    )
    after = msgs[n_before:]
    # After the restart the retained state is republished (same alerts, same ids), then cleared.
    wl_after = [m for m in on(T_WLG, after) if m is not None]
    assert {m["id"] for m in wl_after} <= {open_before[("waterlogging", WLG)].id}
    assert all(m["level"] == "waterlogging" for m in wl_after)
    assert service.stop() == 0

    # A client connecting now gets no retained alert for either site.
    assert T_WLG not in retained(b.host, b.port) and T_DO not in retained(b.host, b.port)
    # The store lists both alerts as history, cleared, with their changes.
    recent = {
        (a.kind, a.site_id): a for a in read_recent(store_path(home), now - timedelta(days=30))
    }
    wl = recent[("waterlogging", WLG)]
    assert wl.cleared_at == wl_start + timedelta(minutes=30 + 9)
    assert wl.peak_value == 30.0 and wl.level == "waterlogging"
    changes = [c["action"] for c in read_changes(store_path(home), wl.id)]
    assert changes == ["raise", "upgrade", "downgrade", "clear"]
    do = recent[("dissolved_oxygen", WAT)]
    assert do.cleared_at == do_start + timedelta(hours=4 * 8) and do.peak_value == 1.6
    assert read_open(store_path(home)) == []
    watcher.close()


def test_retained_alert_reaches_a_late_subscriber(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    b = mosquitto_broker
    service = AlertsProcess(settings.home, b.url)
    service.wait_connected()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    publish(b, depth_messages(start, [45.0] * 4))
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    got: dict[str, bytes] = {}
    while datetime.now(UTC) < deadline and T_WLG not in got:
        got = retained(b.host, b.port, wait_s=0.5)
    msg = json.loads(got[T_WLG])
    assert msg["level"] == "danger" and msg["value"] == 45.0 and msg["threshold"] == 40.0
    assert service.stop() == 0


def test_a_debounce_in_progress_survives_a_restart(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    # Two readings above 15 cm, a clean restart, the third: raised (the rules' checkpoint in the
    # store carried the count; without it the third would be the first of a new run).
    b = mosquitto_broker
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    watcher = AlertWatcher(b.host, b.port)
    service = AlertsProcess(settings.home, b.url)
    service.wait_connected()
    publish(b, depth_messages(start, [20.0, 20.0]))
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while service.read_status().get("readings", 0) < 2 and datetime.now(UTC) < deadline:
        time.sleep(0.05)
    assert service.read_status()["readings"] >= 2
    assert service.stop() == 0
    assert on(T_WLG, watcher.messages) == []
    service = AlertsProcess(settings.home, b.url)
    service.wait_connected()
    publish(b, depth_messages(start + timedelta(minutes=2), [20.0], seq0=2))
    msgs = watcher.wait_for(lambda m: len(on(T_WLG, m)) >= 1)
    first = on(T_WLG, msgs)[0]
    assert first is not None and first["level"] == "waterlogging"
    assert first["started_at"] == start.isoformat().replace("+00:00", ".000Z")
    assert service.stop() == 0
    watcher.close()


def test_a_silent_site_is_published_and_cleared_by_its_next_reading(
    settings: Settings, mosquitto_broker: BrokerHandle, tmp_path: Path
) -> None:
    # A copy of the reference data whose one waterlogging point reports every second, so that
    # three periods of silence take 3 s; every other site is dropped from the catalogue.
    ref = tmp_path / "reference"
    shutil.copytree(REPO_ROOT / "reference", ref)
    sites = ref / "sites" / "wushan"
    for name in ("air_stations.csv", "water_sections.csv", "drinking_water_sources.csv",
                 "traffic_detectors.csv", "waterlogging_points.csv"):  # fmt: skip
        lines = (sites / name).read_text(encoding="utf-8").splitlines()
        keep = [ln for ln in lines[1:] if ln.startswith(f"{WLG},")]
        (sites / name).write_text("\n".join([lines[0], *keep]) + "\n", encoding="utf-8")
    text = (sites / "waterlogging_points.csv").read_text(encoding="utf-8")
    (sites / "waterlogging_points.csv").write_text(text.replace(",60,WLG-0101,", ",1,WLG-0101,"))
    b = mosquitto_broker
    watcher = AlertWatcher(b.host, b.port)
    service = AlertsProcess(settings.home, b.url, env={"CITYPIPE_REFERENCE_DIR": str(ref)})
    service.wait_connected()
    topic = f"city/wushan/alert/silent/{WLG}"
    msgs = watcher.wait_for(lambda m: len(on(topic, m)) >= 1)
    alert = on(topic, msgs)[0]
    assert alert is not None and alert["kind"] == "silent" and alert["threshold"] == 3.0
    assert alert["value"] > 3.0 and alert["unit"] == "s"
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    payload = reading("waterlogging", WLG, WLG_DEV, 1, now, 1, {"depth_cm": 0.0})
    publish(b, [(f"city/wushan/waterlogging/{WLG}", payload)])
    msgs = watcher.wait_for(lambda m: len(on(topic, m)) >= 2)
    assert on(topic, msgs)[1] is None  # the empty retained message: cleared
    assert service.stop() == 0
    watcher.close()
    # The CLI lists it from the store, cleared.
    listed = subprocess.run(
        [sys.executable, "-m", "citypipe.cli", "alerts", "--list"],
        cwd=REPO_ROOT,
        env={**os.environ, "CITYPIPE_HOME": str(settings.home)},
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["kind"], r["site_id"], r["cleared_at"] is not None) for r in rows] == [
        ("silent", WLG, True)
    ]
