"""Shared subscriptions: one `citypipe ingest` process against two on one `$share` group
(`make bench-shared`).

    python -m bench.bench_shared [--messages 100000] [--processes 1,2]

Per scenario, on one private Mosquitto with the project's deploy config (a free port):

1. each ingest instance gets a fixed, distinct client id and its persistent session is created
   on ``$share/citypipe/city/{city}/+/+`` (QoS 1), so the broker shares the stream from the first
   message on; then the ``citypipe ingest --shared`` processes start (one data folder, as the
   compose file's ingest-1 and ingest-2 share the data volume) and connect;
2. N pre-generated Wushan readings (every site, one JSON reading per message, observation-time
   order; ``bench.bench_ingest.generate``) are published at QoS 1 as fast as one publisher can,
   while the consumers run: a live stream, not a backlog;
3. rate = N / (first publish -> last message acknowledged by an ingest process, after fsync);
   each process's CPU (its service and its writer child) is read when the last ack is in;
4. the landing zone is loaded into a fresh warehouse by the ingest DAG's own steps (discover,
   validate, load, quarantine, dq, dirty days; repeated until nothing new) and checked: every
   published reading stored once (rows = unique natural keys = N), and per process
   received = accepted + quarantined + duplicates from its own counters (``/status``).

Each process reports on its own ``--metrics-port``: several instances in one data folder write
the same ``status/ingest.json``. The machine's load average is printed with each scenario (the
figures mean little on a busy machine: run it twice and compare). Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.backends import machine_load
from bench.bench_ingest import create_session, generate
from common.settings import REPO_ROOT, Settings, get_settings
from simulator.broker import BrokerHandle, start_broker
from steps.ingest import (
    discover,
    load_feed,
    load_quarantine,
    mark_dirty_days,
    record_dq,
    validate_feed,
)
from warehouse import db

SHARE_GROUP = "citypipe"  # the group `citypipe ingest --shared` subscribes with
FEEDS = ("air", "water", "waterlogging", "traffic")

# Rows and unique natural keys (site, device, lane for traffic, observed_at) per core table.
COUNT_CORE_KEYS = """
select 'air' as feed, count(*) as n_rows,
    count(distinct (site_id, device_id, observed_at)) as n_keys from core.obs_air
union all
select 'water', count(*), count(distinct (site_id, device_id, observed_at)) from core.obs_water
union all
select 'waterlogging', count(*),
    count(distinct (site_id, device_id, observed_at)) from core.obs_waterlogging
union all
select 'traffic', count(*),
    count(distinct (site_id, device_id, lane, observed_at)) from core.obs_traffic
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class IngestProcess:
    """One ``citypipe ingest --shared`` subprocess with its own client id and /status port."""

    client_id: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    cpu_s: float = 0.0  # service + writer, read by ``read_cpu``
    status: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        home: Path,
        broker: BrokerHandle,
        client_id: str,
        *,
        env: dict[str, str] | None = None,
    ) -> IngestProcess:
        port = free_port()
        log = home / f"ingest-{client_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        run_env = {
            **(env or os.environ),
            "CITYPIPE_HOME": str(home),
            "CITYPIPE_MQTT_URL": broker.url,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "citypipe.cli", "--log-level", "INFO", "ingest",
                 "--shared", "--client-id", client_id, "--metrics-port", str(port)],
                cwd=REPO_ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return cls(client_id, proc, port, log)

    def read_status(self) -> dict[str, Any]:
        """The service's live counters (``GET /status``); the last ones seen (or {}) when it
        does not answer."""
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/status", timeout=2)
        except httpx.HTTPError:
            return self.status
        if r.status_code == 200:
            self.status = r.json()
        return self.status

    def read_cpu(self) -> float:
        """CPU seconds (user + system) of the service and everything it started."""
        total = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            ps = psutil.Process(self.proc.pid)
            for p in [ps, *ps.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = p.cpu_times()
                    total += t.user + t.system
        self.cpu_s = total
        return total

    def subscribed(self) -> bool:
        return "subscribed to" in self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the service flushes, acknowledges and exits 0); SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@contextlib.contextmanager
def ingest_group(
    home: Path,
    broker: BrokerHandle,
    client_ids: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    before_start: Callable[[], object] | None = None,
) -> Iterator[list[IngestProcess]]:
    """Sessions created on the shared filter, ``before_start()`` (e.g. publish a backlog the
    broker queues for them), then one process per client id, all subscribed. On exit each
    process is stopped (SIGTERM: a clean stop)."""
    topic = f"$share/{SHARE_GROUP}/city/{get_settings().city}/+/+"
    for cid in client_ids:
        create_session(broker, cid, topic)
    if before_start is not None:
        before_start()
    procs: list[IngestProcess] = []
    try:
        for cid in client_ids:
            procs.append(IngestProcess.start(home, broker, cid, env=env))
        deadline = time.monotonic() + 120
        while not all(p.subscribed() and p.read_status() for p in procs):
            for p in procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{p.client_id} exited: {p.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("ingest processes did not subscribe within 120 s")
            time.sleep(0.2)
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_all_acked(procs: Sequence[IngestProcess], messages: int, timeout: float) -> None:
    """Until the processes together acknowledged ``messages`` messages; then read their CPU."""
    deadline = time.monotonic() + timeout
    while True:
        acked = sum(p.read_status().get("messages", {}).get("acked", 0) for p in procs)
        if acked >= messages:
            break
        for p in procs:
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.client_id} exited: {p.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {acked} of {messages} messages acknowledged in {timeout} s")
        time.sleep(0.1)
    for p in procs:
        p.read_cpu()


def publish_live(
    broker: BrokerHandle, messages: Sequence[tuple[str, bytes]], client_id: str = "bench-pub"
) -> tuple[float, float]:
    """Publish at QoS 1 as fast as one paho client can; (wall time of the first publish,
    messages/s until the broker acknowledged the last)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    acked = [0]
    connected = threading.Event()

    def on_publish(*_: object) -> None:
        acked[0] += 1  # paho's network thread only

    def wait_acked(at_least: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while acked[0] < at_least:
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker acknowledged only {acked[0]} of {len(messages)}")
            time.sleep(0.005)

    c.on_publish = on_publish
    c.on_connect = lambda *a: connected.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError("publisher could not connect")
    first = time.time()
    t0 = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        c.publish(topic, payload, qos=1)
        if i % 5000 == 4999:
            wait_acked(i - 20000, 300)  # bound paho's own out-queue
    wait_acked(len(messages), 1800)
    rate = len(messages) / (time.perf_counter() - t0)
    c.disconnect()
    c.loop_stop()
    return first, rate


def load_landing(settings: Settings, run_id: str = "bench-shared") -> float:
    """The ingest DAG's load chain over every landing and quarantine file; seconds taken."""
    t0 = time.perf_counter()
    for i in range(1000):
        found = discover(settings, f"{run_id}-{i}")
        if not any(found["files"].values()):
            break
        for feed in FEEDS:
            load_feed(
                settings, validate_feed(settings, feed, found["files"][feed], found["load_run_id"])
            )
        load_quarantine(settings, found)
        record_dq(settings)
        mark_dirty_days(settings)
    return time.perf_counter() - t0


def core_keys(settings: Settings) -> dict[str, tuple[int, int]]:
    """feed -> (rows, unique natural keys) in the warehouse's core tables."""
    with db.reader(settings) as con:
        return {f: (n, k) for f, n, k in con.execute(COUNT_CORE_KEYS).fetchall()}


def run_scenario(
    broker: BrokerHandle,
    root: Path,
    messages: Sequence[tuple[str, bytes]],
    processes: int,
    mode: str,
) -> dict[str, Any]:
    """``live``: publish while the processes run (first publish -> last ack); ``backlog``:
    publish while they are away, then start them (first message received -> last ack)."""
    n = len(messages)
    home = root / f"home-{mode}-{processes}"
    home.mkdir()
    ids = [f"citypipe-ingest-bench-{mode}-{processes}-{i + 1}" for i in range(processes)]
    load_before = machine_load()
    pub: list[tuple[float, float]] = []

    def backlog() -> None:
        pub.append(publish_live(broker, messages, client_id=f"bench-pub-{mode}-{processes}"))

    with ingest_group(
        home, broker, ids, before_start=backlog if mode == "backlog" else None
    ) as procs:
        # Live: the CPU of starting up is left out; backlog: the drain starts with the process.
        cpu0 = [p.read_cpu() if mode == "live" else 0.0 for p in procs]
        if mode == "live":
            pub.append(publish_live(broker, messages, client_id=f"bench-pub-{processes}"))
        wait_all_acked(procs, n, timeout=1800)
        statuses = [p.status for p in procs]
        cpu = [p.cpu_s - c0 for p, c0 in zip(procs, cpu0, strict=True)]
    codes = [p.proc.returncode for p in procs]
    first, pub_rate = pub[0]
    if mode == "backlog":
        first = min(datetime.fromisoformat(s["first_message_at"]).timestamp() for s in statuses)
    last_ack = max(datetime.fromisoformat(s["last_ack_at"]).timestamp() for s in statuses)
    elapsed = last_ack - first
    settings = get_settings(home=home)
    load_s = load_landing(settings)
    keys = core_keys(settings)
    rows = sum(v[0] for v in keys.values())
    uniq = sum(v[1] for v in keys.values())
    per_proc = []
    for cid, st, c in zip(ids, statuses, cpu, strict=True):
        r = st["records"]
        per_proc.append(
            {
                "client_id": cid,
                "messages": st["messages"]["acked"],
                "received": r["received"],
                "accepted": r["accepted"],
                "quarantined": r["quarantined"],
                "duplicates": r["duplicates"],
                "balanced": r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
                and st["invariant_ok"],
                "cpu_s": c,
            }
        )
    return {
        "mode": mode,
        "processes": processes,
        "messages": n,
        "publish_rate": pub_rate,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "per_process": per_proc,
        "exit_codes": codes,
        "load_s": load_s,
        "warehouse_rows": rows,
        "warehouse_keys": uniq,
        "by_feed": keys,
        "load_before": load_before,
        "load_after": machine_load(),
    }


def report(res: dict[str, Any]) -> bool:
    n = res["messages"]
    ok_counts = all(p["balanced"] for p in res["per_process"])
    accepted = sum(p["accepted"] for p in res["per_process"])
    lost = n - res["warehouse_keys"]
    dup = res["warehouse_rows"] - res["warehouse_keys"]
    ok = (
        ok_counts
        and lost == 0
        and dup == 0
        and accepted >= n
        and res["exit_codes"] == [0] * len(res["exit_codes"])
    )
    span = "first publish" if res["mode"] == "live" else "first message received (backlog)"
    print(
        f"\n{res['mode']}, {res['processes']} process(es): {n:,} messages in "
        f"{res['elapsed_s']:.2f} s = {res['rate']:,.0f} msg/s ({span} -> last ack; the "
        f"publisher alone: {res['publish_rate']:,.0f} msg/s)"
    )
    print(f"  machine before: {res['load_before']}; after: {res['load_after']}")
    for p in res["per_process"]:
        share = p["messages"] / n
        print(
            f"  {p['client_id']}: {p['messages']:,} messages ({share:.0%}), CPU {p['cpu_s']:.1f} s "
            f"({p['cpu_s'] / res['elapsed_s']:.0%} of one core), records received "
            f"{p['received']:,} = accepted {p['accepted']:,} + quarantined {p['quarantined']} "
            f"+ duplicates {p['duplicates']} {'OK' if p['balanced'] else 'UNBALANCED'}"
        )
    print(
        f"  warehouse: {res['warehouse_rows']:,} rows, {res['warehouse_keys']:,} unique keys "
        f"(published {n:,}): lost {lost}, duplicated {dup}; loaded in {res['load_s']:.1f} s "
        f"({res['warehouse_rows'] / res['load_s']:,.0f} rows/s) "
        f"{json.dumps({f: v[0] for f, v in res['by_feed'].items()})}"
    )
    print(f"  {'OK' if ok else 'FAILED'}", flush=True)
    res["ok"] = ok
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000, help="readings per scenario")
    ap.add_argument("--processes", default="1,2", help="ingest processes per scenario")
    ap.add_argument("--modes", default="live,backlog", help="live and/or backlog")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.processes.split(",")]
    modes = args.modes.split(",")
    messages = list(generate(args.messages))  # pre-generated: publishing is not JSON's speed
    results = []
    with tempfile.TemporaryDirectory(prefix="citypipe-bench-shared-") as tmp:
        root = Path(tmp)
        for mode in modes:
            for k in counts:
                # A fresh broker per scenario: an earlier scenario's persistent sessions are
                # members of the same share group, and the broker would keep queueing their share.
                with start_broker(root / f"broker-{mode}-{k}", prefer="mosquitto") as broker:
                    print(f"{mode}: {k} ingest process(es) on $share/{SHARE_GROUP}, "
                          f"{len(messages):,} messages; {broker.kind} pid {broker.pid} ...", flush=True)  # fmt: skip
                    results.append(run_scenario(broker, root, messages, k, mode))
                    report(results[-1])
    ok = all(r["ok"] for r in results)
    print()
    for mode in modes:
        rs = [r for r in results if r["mode"] == mode]
        for r in rs[1:]:
            print(f"{mode}: {r['processes']} processes / {rs[0]['processes']}: "
                  f"{r['rate'] / rs[0]['rate']:.2f}x the messages/s")  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
