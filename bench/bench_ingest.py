"""Ingest benchmark: durable `citypipe ingest` against a bare QoS 1 subscriber (`make bench-ingest`).

Same run, same broker (a private Mosquitto with the project's deploy config on a free port), same
machine, same method for both consumers:

1. the consumer's persistent session is created (MQTT 5, clean start off, QoS 1 subscription to
   ``city/{city}/+/+``), then it goes away;
2. N pre-generated readings (one JSON reading per message, in time order, all Wushan sites) are
   published at QoS 1 into the broker while the consumer is offline: a backlog;
3. the consumer process starts and drains the backlog. Rate = N / (last message acknowledged -
   first message received), measured inside each consumer process.

(a) bare: a paho subscriber that only counts (auto-ack on receipt);
(b) ingest: ``citypipe ingest`` as a subprocess (parse, dedupe, Parquet + fsync, ack after fsync).
Then a larger backlog (default 1,000,000) is drained by ``citypipe ingest`` while psutil samples its
RSS every 50 ms: the peak must stay at or below 300 MB. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psutil

from common.catalogue import load_catalogue
from common.settings import REPO_ROOT, get_settings
from simulator.broker import BrokerHandle, start_broker

CST = timezone(timedelta(hours=8))
RATIO_TARGET = 0.8
RSS_TARGET_MB = 300

BARE_SUBSCRIBER = textwrap.dedent(
    """
    import json, sys, threading, time
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port, client_id, topic, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    state = {"count": 0, "first": None, "last": None}
    done = threading.Event()

    def on_message(client, userdata, msg):
        now = time.time()
        if state["first"] is None:
            state["first"] = now
        state["count"] += 1
        if state["count"] >= n:
            state["last"] = now
            done.set()

    def on_connect(client, userdata, flags, rc, props):
        client.subscribe(topic, qos=1)

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    c.connect(host, port, clean_start=False, properties=props)
    c.loop_start()
    if not done.wait(3600):
        sys.exit("timed out")
    c.disconnect()
    c.loop_stop()
    print(json.dumps(state))
    """
)


def generate(n: int, city: str = "wushan") -> Iterator[tuple[str, bytes]]:
    """``n`` valid single-reading messages over every catalogue site, in observation-time order."""
    settings = get_settings()
    cat = load_catalogue(settings.reference_dir, city)
    streams: list[tuple[str, str, str, int | None, int]] = []
    for site in sorted(cat.sites.values(), key=lambda s: s.site_id):
        lanes = range(1, site.lanes + 1) if site.feed == "traffic" else [None]
        for lane in lanes:
            streams.append((site.feed, site.site_id, site.device_ids[0], lane, site.period_s))
    # Enough past time that the whole run is observed before now.
    per_tick = sum(1 for s in streams if s[4] == 60) or 1
    ticks = n // per_tick + 2
    t0 = (datetime.now(UTC) - timedelta(minutes=ticks + 120)).replace(second=0, microsecond=0)
    sent = 0
    tick = 0
    while sent < n:
        observed = t0 + timedelta(minutes=tick)
        epoch_s = int(observed.timestamp())
        iso = observed.astimezone(CST).isoformat()
        for feed, site_id, device, lane, period in streams:
            if epoch_s % period:
                continue
            v = 10.0 + (tick * 7 + len(site_id)) % 80
            doc: dict[str, object] = {
                "schema": f"{feed}/v1",
                "site_id": site_id,
                "device_id": device,
                "seq": tick,
                "observed_at": iso,
                "period_s": period,
                "flags": [],
            }
            if feed == "air":
                doc["values"] = {"pm25": v, "pm10": v * 1.6, "so2": 7.0, "no2": 24.0, "co": 0.7, "o3": 61.0}  # fmt: skip
            elif feed == "water":
                doc["values"] = {"water_temp_c": 17.5, "ph": 7.6, "do": 8.1, "codmn": 2.1, "nh3n": 0.12, "tp": 0.04, "tn": 0.9}  # fmt: skip
            elif feed == "waterlogging":
                doc["values"] = {"depth_cm": v / 10, "rain_mm": 0.0}
            else:
                doc["values"] = {"volume": v, "speed_kmh": 38.0, "occupancy_pct": 9.5}
                doc["lane"] = lane
                doc["direction"] = "inbound"
            yield f"city/{city}/{feed}/{site_id}", json.dumps(doc, separators=(",", ":")).encode()
            sent += 1
            if sent >= n:
                return
        tick += 1


def create_session(broker: BrokerHandle, client_id: str, topic: str) -> None:
    """Connect once with a persistent session and subscribe, so the broker queues from now on."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(broker.host, broker.port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("subscription not acknowledged")
    c.disconnect()
    c.loop_stop()


def publish_backlog(broker: BrokerHandle, n: int) -> float:
    """Publish ``n`` messages at QoS 1; return the publish rate (messages/s)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1  # paho's network thread only

    def wait_acked(at_least: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while acked[0] < at_least:
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker acknowledged only {acked[0]} of {n}")
            time.sleep(0.01)

    c.on_publish = on_publish
    c.connect(broker.host, broker.port)
    c.loop_start()
    messages = list(generate(n))  # pre-generated: the publish rate is the broker's, not JSON's
    t0 = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        c.publish(topic, payload, qos=1)
        if i % 5000 == 4999:
            wait_acked(i - 20000, 300)  # keep paho's own out-queue short (its memory, not ours)
    wait_acked(n, 1800)
    rate = n / (time.perf_counter() - t0)
    del messages
    c.disconnect()
    c.loop_stop()
    return rate


def run_bare(broker: BrokerHandle, n: int, topic: str) -> dict[str, float]:
    client_id = "bench-bare"
    create_session(broker, client_id, topic)
    pub_rate = publish_backlog(broker, n)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            BARE_SUBSCRIBER,
            broker.host,
            str(broker.port),
            client_id,
            topic,
            str(n),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    state = json.loads(out.stdout)
    return {"publish_rate": pub_rate, "rate": n / (state["last"] - state["first"])}


def run_ingest(broker: BrokerHandle, n: int, topic: str, home: Path) -> dict[str, float]:
    client_id = "bench-ingest"
    create_session(broker, client_id, topic)
    pub_rate = publish_backlog(broker, n)
    env = {
        **os.environ,
        "CITYPIPE_HOME": str(home),
        "CITYPIPE_MQTT_URL": broker.url,
        "CITYPIPE_MQTT_CLIENT_ID": client_id,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "citypipe.cli",
            "--log-level",
            "WARNING",
            "ingest",
            "--until-idle",
            "2",
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    ps = psutil.Process(proc.pid)
    # RSS of the service and its writer process (and anything else it starts), summed per sample.
    peak = peak_service = peak_writer = 0
    while proc.poll() is None:
        try:
            service = ps.memory_info().rss
            children = 0
            for child in ps.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    children += child.memory_info().rss
        except psutil.NoSuchProcess:
            break
        peak = max(peak, service + children)
        peak_service = max(peak_service, service)
        peak_writer = max(peak_writer, children)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"citypipe ingest exited with {proc.returncode}")
    st = json.loads((home / "status" / "ingest.json").read_text())
    if st["messages"]["acked"] != n or st["records"]["accepted"] != n or not st["invariant_ok"]:
        raise RuntimeError(f"ingest did not land the backlog exactly: {st['records']}")
    first = datetime.fromisoformat(st["first_message_at"])
    last = datetime.fromisoformat(st["last_ack_at"])
    return {
        "publish_rate": pub_rate,
        "rate": n / (last - first).total_seconds(),
        "peak_rss_mb": peak / 2**20,
        "peak_service_mb": peak_service / 2**20,
        "peak_writer_mb": peak_writer / 2**20,
        "files": st["files_written"],
        "flush_max_s": st["flush_seconds"]["max"],
    }


def cost_breakdown(n: int = 20_000) -> dict[str, float]:
    """CPU per message of the two stages the writer runs, in-process (µs/message)."""
    from ingestion.writer import LandingWriter

    with tempfile.TemporaryDirectory(prefix="citypipe-bench-cost-") as tmp:
        settings = get_settings(home=Path(tmp), mqtt_url="mqtt://127.0.0.1:9")
        writer = LandingWriter(settings)
        messages = list(generate(n))
        now = time.time()
        t0 = time.perf_counter()
        parsed = [writer.parse(topic, payload, now) for topic, payload in messages]
        parse_us = (time.perf_counter() - t0) / n * 1e6
        writer.write(parsed[:100])  # warm-up: first pyarrow conversion
        t0 = time.perf_counter()
        writer.write(parsed[100:])
        flush_us = (time.perf_counter() - t0) / (n - 100) * 1e6
    return {"parse_us": parse_us, "flush_us": flush_us}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000, help="rate comparison size")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="RSS run size (0: skip)")
    args = ap.parse_args(argv)
    topic = f"city/{get_settings().city}/+/+"
    with tempfile.TemporaryDirectory(prefix="citypipe-bench-") as tmp:
        root = Path(tmp)
        with start_broker(root / "broker", prefer="mosquitto") as broker:
            print(f"broker: mosquitto pid {broker.pid} on {broker.url} (deploy/mosquitto config)")
            print(f"(a) bare subscriber, backlog of {args.messages:,} ...", flush=True)
            bare = run_bare(broker, args.messages, topic)
            print(f"(b) citypipe ingest, backlog of {args.messages:,} ...", flush=True)
            ing = run_ingest(broker, args.messages, topic, root / "home-a")
            big = None
            if args.backlog:
                print(f"(c) citypipe ingest, backlog of {args.backlog:,} (RSS) ...", flush=True)
                big = run_ingest(broker, args.backlog, topic, root / "home-b")
    cost = cost_breakdown()
    ratio = ing["rate"] / bare["rate"]
    rows = [
        ("bare paho subscriber (count only)", args.messages, bare["rate"], "", ""),
        ("citypipe ingest (durable)", args.messages, ing["rate"], f"{ing['peak_rss_mb']:.0f}", ""),
    ]
    if big is not None:
        rows.append(
            (
                "citypipe ingest, big backlog",
                args.backlog,
                big["rate"],
                f"{big['peak_rss_mb']:.0f}",
                "",
            )
        )
    print()
    print(f"{'consumer':<36} {'messages':>10} {'msg/s':>10} {'peak RSS MB':>12}")
    print("-" * 71)
    for name, n, rate, rss, _ in rows:
        print(f"{name:<36} {n:>10,} {rate:>10,.0f} {rss:>12}")
    print("-" * 71)
    print(f"publish rate into the broker (backlog fill): {bare['publish_rate']:,.0f} msg/s")
    verdict = "OK" if ratio >= RATIO_TARGET else "BELOW TARGET"
    print(f"ratio ingest / bare: {ratio:.2f} (target >= {RATIO_TARGET}) {verdict}")
    if big is not None:
        verdict = "OK" if big["peak_rss_mb"] <= RSS_TARGET_MB else "ABOVE TARGET"
        print(
            f"peak RSS draining {args.backlog:,}: {big['peak_rss_mb']:.0f} MB "
            f"(target <= {RSS_TARGET_MB} MB) {verdict} (service {big['peak_service_mb']:.0f} MB "
            f"+ writer {big['peak_writer_mb']:.0f} MB, peaks taken separately); "
            f"{big['files']} files, slowest flush {big['flush_max_s']:.2f} s"
        )
    print(
        f"CPU per message: bare paho receive+ack ~{1e6 / bare['rate']:.0f} us (from its rate); "
        f"the writer process adds parse {cost['parse_us']:.0f} us + flush (dedupe, Arrow, "
        f"Parquet, fsync) {cost['flush_us']:.0f} us on the other core"
    )
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
