"""Alert latency benchmark (`make bench-alerts`): from a sensor's publish to the alert's publish.

A private Mosquitto (the project's deploy config, free port), `citypipe alerts` as a subprocess
with a fresh store, and in this process a publisher (QoS 1, as a sensor) and a subscriber to
``city/{city}/alert/#``. For each cycle, on one of the waterlogging points in turn: two readings
above 15 cm (the debounce holds), then the third (the alert must be raised: the latency sample is
from just before that publish to the alert message's arrival), then ten dry readings (the tenth
clears it: a second sample, publish to the empty retained message). Meanwhile a background
publisher sends air readings of every station at ``--background`` messages per second, so the
service also parses and evaluates other traffic. Both clocks are this process's monotonic clock.

Target: p99 <= 1 s. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common.catalogue import load_catalogue
from common.settings import REPO_ROOT
from simulator.broker import start_broker

CST = timezone(timedelta(hours=8))
P99_TARGET_S = 1.0


def _reading(feed: str, site: str, device: str, seq: int, at: datetime, values: dict[str, float]) -> bytes:  # fmt: skip
    return json.dumps(
        {
            "schema": f"{feed}/v1",
            "site_id": site,
            "device_id": device,
            "seq": seq,
            "observed_at": at.astimezone(CST).isoformat(),
            "period_s": 60,
            "values": values,
            "flags": [],
        }
    ).encode()


def _client(host: str, port: int, client_id: str) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_inflight_messages_set(1000)
    c.connect(host, port)
    c.loop_start()
    return c


def _percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run(cycles: int, background_per_s: float) -> dict[str, Any]:
    catalogue = load_catalogue(REPO_ROOT / "reference", "wushan")
    points = sorted(catalogue.by_kind("waterlogging_point"), key=lambda s: s.site_id)
    stations = sorted(catalogue.by_kind("air_station"), key=lambda s: s.site_id)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with start_broker(Path(tmp) / "broker", prefer="mosquitto") as broker:
            env = {**os.environ, "CITYPIPE_HOME": str(home), "CITYPIPE_MQTT_URL": broker.url}
            log = open(home / "alerts.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "citypipe.cli", "alerts", "--status-interval", "0.2"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            status = home / "status" / "alerts.json"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    st = json.loads(status.read_text())
                    if st.get("connected") and st.get("publisher_connected"):
                        break
                except (FileNotFoundError, json.JSONDecodeError):
                    pass
                time.sleep(0.05)
            else:
                raise SystemExit("citypipe alerts did not connect")

            arrivals: dict[str, list[tuple[float, bytes]]] = {}
            cond = threading.Condition()

            def on_message(client: Any, userdata: Any, msg: Any) -> None:
                with cond:
                    arrivals.setdefault(msg.topic, []).append(
                        (time.monotonic(), bytes(msg.payload))
                    )
                    cond.notify_all()

            sub = _client(broker.host, broker.port, "bench-watch")
            subscribed = threading.Event()
            sub.on_message = on_message
            sub.on_subscribe = lambda *a: subscribed.set()
            sub.subscribe("city/wushan/alert/waterlogging/#", qos=1)
            assert subscribed.wait(10)
            pub = _client(broker.host, broker.port, "bench-sensor")
            bg = _client(broker.host, broker.port, "bench-background")

            stop_bg = threading.Event()
            bg_sent = [0]

            def background() -> None:
                # Air readings of every station, minute by minute in the past hour, at the rate.
                t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=6)
                k = 0
                while not stop_bg.is_set() and background_per_s > 0:
                    s = stations[k % len(stations)]
                    at = t0 + timedelta(minutes=k // len(stations))
                    v = {
                        "pm25": 35.0 + k % 7,
                        "pm10": 58.0,
                        "so2": 7.0,
                        "no2": 24.0,
                        "co": 0.7,
                        "o3": 61.0,
                    }
                    bg.publish(
                        f"city/wushan/air/{s.site_id}",
                        _reading("air", s.site_id, s.device_ids[0], k, at, v),
                        qos=1,
                    )
                    bg_sent[0] += 1
                    k += 1
                    time.sleep(1 / background_per_s)

            bg_thread = threading.Thread(target=background, daemon=True)
            bg_thread.start()

            raise_s: list[float] = []
            clear_s: list[float] = []
            start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=5)
            minute = [0] * len(points)

            def send(i: int, depth: float) -> float:
                p = points[i]
                at = start + timedelta(minutes=minute[i])
                payload = _reading(
                    "waterlogging", p.site_id, p.device_ids[0], minute[i], at, {"depth_cm": depth}
                )
                minute[i] += 1
                t = time.monotonic()
                pub.publish(f"city/wushan/waterlogging/{p.site_id}", payload, qos=1)
                return t

            def wait_message(topic: str, after: int, empty: bool) -> float:
                with cond:
                    ok = cond.wait_for(
                        lambda: any(
                            (p == b"") == empty for _, p in arrivals.get(topic, [])[after:]
                        ),
                        timeout=30,
                    )
                if not ok:
                    raise SystemExit(f"no alert on {topic}; see {home / 'alerts.log'}")
                return next(t for t, p in arrivals[topic][after:] if (p == b"") == empty)

            for c in range(cycles):
                i = c % len(points)
                topic = f"city/wushan/alert/waterlogging/{points[i].site_id}"
                send(i, 20.0)
                send(i, 20.0)
                time.sleep(0.02)
                n = len(arrivals.get(topic, []))
                t = send(i, 20.0)
                raise_s.append(wait_message(topic, n, empty=False) - t)
                for _ in range(9):
                    send(i, 0.0)
                time.sleep(0.02)
                n = len(arrivals.get(topic, []))
                t = send(i, 0.0)
                clear_s.append(wait_message(topic, n, empty=True) - t)
            stop_bg.set()
            bg_thread.join(5)
            for cl in (pub, bg, sub):
                cl.disconnect()
                cl.loop_stop()
            proc.terminate()
            rc = proc.wait(30)
            log.close()
    both = raise_s + clear_s
    return {
        "cycles": cycles,
        "background_msgs_per_s": background_per_s,
        "background_sent": bg_sent[0],
        "samples": len(both),
        "raise_p50_ms": round(statistics.median(raise_s) * 1000, 2),
        "raise_p99_ms": round(_percentile(raise_s, 99) * 1000, 2),
        "clear_p50_ms": round(statistics.median(clear_s) * 1000, 2),
        "clear_p99_ms": round(_percentile(clear_s, 99) * 1000, 2),
        "all_p50_ms": round(statistics.median(both) * 1000, 2),
        "all_p99_ms": round(_percentile(both, 99) * 1000, 2),
        "all_max_ms": round(max(both) * 1000, 2),
        "target_p99_ms": P99_TARGET_S * 1000,
        "met": _percentile(both, 99) <= P99_TARGET_S,
        "service_exit": rc,
    }


def _start_service(home: Path, url: str) -> tuple[subprocess.Popen[bytes], Any]:
    env = {**os.environ, "CITYPIPE_HOME": str(home), "CITYPIPE_MQTT_URL": url}
    log = open(home / "alerts.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "citypipe.cli", "alerts", "--status-interval", "0.1"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log


def _status(home: Path) -> dict[str, Any]:
    try:
        return json.loads((home / "status" / "alerts.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_backlog(n: int) -> dict[str, Any]:
    """Catch-up after an outage: ``n`` readings (air and waterlogging sites, minute by minute)
    queued by the broker for the service's persistent session while it is down; then the
    service starts and drains them. Rate = n / (time from its start to the last one evaluated,
    status file sampled every 0.1 s)."""
    catalogue = load_catalogue(REPO_ROOT / "reference", "wushan")
    sites = sorted(
        catalogue.by_kind("air_station") + catalogue.by_kind("waterlogging_point"),
        key=lambda s: s.site_id,
    )
    minutes = n // len(sites) + 1
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes + 10)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with start_broker(Path(tmp) / "broker", prefer="mosquitto") as broker:
            proc, log = _start_service(home, broker.url)
            deadline = time.monotonic() + 60
            while not _status(home).get("connected"):
                if time.monotonic() > deadline:
                    raise SystemExit("citypipe alerts did not connect")
                time.sleep(0.05)
            proc.terminate()
            proc.wait(30)  # its session stays on the broker, which now queues for it
            pub = _client(broker.host, broker.port, "bench-sensor")
            acked = threading.Semaphore(0)
            pub.on_publish = lambda *a: acked.release()
            sent = 0
            for k in range(minutes):
                at = start + timedelta(minutes=k)
                for s in sites:
                    if sent == n:
                        break
                    if s.feed == "air":
                        v = {
                            "pm25": 35.0 + k % 7,
                            "pm10": 58.0,
                            "so2": 7.0,
                            "no2": 24.0,
                            "co": 0.7,
                            "o3": 61.0,
                        }
                    else:
                        v = {"depth_cm": float(k % 50)}
                    pub.publish(
                        f"city/wushan/{s.feed}/{s.site_id}",
                        _reading(s.feed, s.site_id, s.device_ids[0], k, at, v),
                        qos=1,
                    )
                    sent += 1
            for _ in range(sent):
                acked.acquire(timeout=60)
            pub.disconnect()
            pub.loop_stop()
            log.close()
            t0 = time.monotonic()
            proc, log = _start_service(home, broker.url)
            while (_status(home).get("messages") or 0) < sent:
                if time.monotonic() - t0 > 600 or proc.poll() is not None:
                    raise SystemExit(f"drain incomplete: {_status(home)}")
                time.sleep(0.1)
            seconds = time.monotonic() - t0
            st = _status(home)
            proc.terminate()
            proc.wait(30)
            log.close()
    return {
        "backlog_messages": sent,
        "drain_s_including_start": round(seconds, 2),
        "msgs_per_s": round(sent / seconds),
        "alert_changes": st.get("changes"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=200, help="raise + clear cycles (2 samples each)")
    ap.add_argument(
        "--background", type=float, default=50.0, help="air messages per second meanwhile"
    )
    ap.add_argument(
        "--backlog",
        type=int,
        default=20_000,
        help="also time the catch-up on this many readings queued while down (0: skip)",
    )
    args = ap.parse_args(argv)
    result = run(args.cycles, args.background)
    if args.backlog:
        result["backlog"] = run_backlog(args.backlog)
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
