"""Sustained-load tooling for tests/reliability/test_rel_sustained_load.py.

- ``Fleet``: a deterministic synthetic fleet (every air, waterlogging and traffic site of the
  catalogue, ``devices_per_site`` extra devices each) whose gateways publish batch payloads (JSON
  arrays of readings, docs/feeds.md). Every reading's key, ``seq`` and value follow from
  (site, device, tick), so the landing zone and the warehouse can be checked for exactly the
  expected set with a few SQL aggregates instead of a Python set of millions of tuples.
- ``publish_paced``: run in one or more spawned processes (a paho QoS 1 client each) that offer a
  share of the fleet at a fixed readings/s rate and report what they achieved.
- ``Sampler``: RSS of the ingest service and its writer child, plus its status file, every second.
- ``slope_mb_per_min``: least-squares slope of a series.

Time is compressed: a device's readings are one period apart in ``observed_at`` but published
far faster than real time (a live fleet of 10,000 readings/s at 60 s periods would need 600,000
devices). For ingest that is the same work: parse, dedupe, Parquet, fsync, ack.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil

CST = timezone(timedelta(hours=8))
FEEDS = ("air", "waterlogging", "traffic")
# The column each feed's checked value lands in, and its value as a function of the reading.
VALUE_COLUMN = {"air": "pm25_ugm3", "waterlogging": "depth_cm", "traffic": "volume_veh"}


def base_value(device: int, seq: int) -> int:
    return (device * 7 + seq * 3) % 90


def feed_value(feed: str, device: int, seq: int) -> float:
    b = base_value(device, seq)
    return {"air": 5.0 + b, "waterlogging": b / 10, "traffic": 10.0 + b}[feed]


# The same function in SQL (``device`` and ``seq`` are integer expressions).
def feed_value_sql(feed: str, device: str, seq: str) -> str:
    b = f"(({device}) * 7 + ({seq}) * 3) % 90"
    return {"air": f"5.0 + {b}", "waterlogging": f"({b}) / 10", "traffic": f"10.0 + {b}"}[feed]


def device_id(prefix: str, d: int) -> str:
    return f"{prefix}{d:04d}"


def reading(feed: str, site: str, period_s: int, dev: str, d: int, seq: int, t0: int) -> dict:
    """One contract reading of device ``d`` at tick ``seq`` (observed t0 + seq * period)."""
    observed = datetime.fromtimestamp(t0 + seq * period_s, UTC).astimezone(CST)
    v = feed_value(feed, d, seq)
    doc: dict[str, Any] = {
        "schema": f"{feed}/v1",
        "site_id": site,
        "device_id": dev,
        "seq": seq,
        "observed_at": observed.isoformat(),
        "period_s": period_s,
        "flags": [],
    }
    if feed == "air":
        doc["values"] = {"pm25": v, "pm10": v * 1.6, "so2": 7.0, "no2": 24.0, "co": 0.7, "o3": 61.0}
    elif feed == "waterlogging":
        doc["values"] = {"depth_cm": v, "rain_mm": 0.0}
    else:
        doc["values"] = {"volume": v, "speed_kmh": 38.0, "occupancy_pct": 9.5}
        doc["lane"] = 1
        doc["direction"] = "inbound"
    return doc


@dataclass(frozen=True)
class Fleet:
    """Gateways (one per catalogue site) of ``devices_per_site`` devices each; per tick every
    gateway publishes its devices' readings as arrays of ``readings_per_message``."""

    sites: tuple[tuple[str, str, int], ...]  # (feed, site_id, period_s)
    devices_per_site: int
    readings_per_message: int
    ticks: int
    t0_epoch_s: int  # observed_at of tick 0 (UTC, a multiple of every period)
    prefix: str = "LD"  # device ids: LD0000, LD0001, ...
    city: str = "wushan"

    @classmethod
    def for_readings(
        cls, catalogue_sites: list[tuple[str, str, int]], n_readings: int, **kw: Any
    ) -> Fleet:
        devices = kw.pop("devices_per_site", 100)
        per_tick = len(catalogue_sites) * devices
        ticks = max(1, -(-n_readings // per_tick))
        longest = max(p for _, _, p in catalogue_sites)
        # Far enough back that the last tick of the slowest feed is still in the past.
        start = time.time() - (ticks + 2) * longest - 3600
        t0 = int(start) // 3600 * 3600
        return cls(tuple(catalogue_sites), devices, ticks=ticks, t0_epoch_s=t0, **kw)

    @property
    def readings(self) -> int:
        return self.ticks * len(self.sites) * self.devices_per_site

    def readings_of(self, feed: str) -> int:
        return self.ticks * self.devices_per_site * sum(1 for f, _, _ in self.sites if f == feed)

    @property
    def messages(self) -> int:
        per_site = -(-self.devices_per_site // self.readings_per_message)
        return self.ticks * len(self.sites) * per_site

    def shard(self, shard: int, shards: int) -> Any:
        """(topic, payload, readings) of one publisher's share (sites round-robin), tick order."""
        ids = [device_id(self.prefix, d) for d in range(self.devices_per_site)]
        for t in range(self.ticks):
            for i, (feed, site, period) in enumerate(self.sites):
                if i % shards != shard:
                    continue
                topic = f"city/{self.city}/{feed}/{site}"
                for lo in range(0, self.devices_per_site, self.readings_per_message):
                    hi = min(lo + self.readings_per_message, self.devices_per_site)
                    batch = [
                        reading(feed, site, period, ids[d], d, t, self.t0_epoch_s)
                        for d in range(lo, hi)
                    ]
                    yield topic, json.dumps(batch, separators=(",", ":")).encode(), hi - lo

    def check_sql(self, feed: str, relation: str) -> str:
        """One row (rows, distinct keys, rows outside the fleet's exact set) for ``feed``'s rows
        of this fleet in ``relation``. rows == distinct == expected and outside == 0 means the
        relation holds exactly the expected readings, each once: every row is one of the
        expected keys with its expected seq and value, and there are as many distinct ones."""
        sites = ", ".join(f"'{s}'" for f, s, _ in self.sites if f == feed)
        period = next(p for f, _, p in self.sites if f == feed)
        dev = "try_cast(substr(device_id, 3) as integer)"
        key = (
            "site_id, device_id, lane, observed_at"
            if feed == "traffic"
            else "site_id, device_id, observed_at"
        )
        want = feed_value_sql(feed, dev, "seq")
        return f"""
            select count(*),
                   count(distinct ({key})),
                   count(*) filter (where not (
                       site_id in ({sites})
                       and {dev} between 0 and {self.devices_per_site - 1}
                       and seq between 0 and {self.ticks - 1}
                       and epoch(observed_at) = {self.t0_epoch_s} + seq * {period}
                       and abs({VALUE_COLUMN[feed]} - ({want})) < 1e-9
                   ) or {dev} is null)
            from {relation}
            where device_id like '{self.prefix}%'
        """


def catalogue_sites(reference_dir: Path, city: str) -> list[tuple[str, str, int]]:
    from common.catalogue import load_catalogue

    cat = load_catalogue(reference_dir, city)
    return sorted((s.feed, s.site_id, s.period_s) for s in cat.sites.values() if s.feed in FEEDS)


# ---------------------------------------------------------------- publishers (spawned processes)


def _client(host: str, port: int, client_id: str) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    return c


def publish_paced(
    host: str,
    port: int,
    client_id: str,
    fleet: Fleet,
    shard: int,
    shards: int,
    readings_per_s: float,
    out: Any,
) -> None:
    """Offer shard ``shard`` of ``fleet`` at ``readings_per_s`` (QoS 1); put a report on ``out``.

    Paced against the clock: when it falls behind (CPU), it publishes as fast as it can until it
    has caught up, so the achieved rate is the honest one. paho's own queue is kept short (at most
    ``_AHEAD`` messages not yet acknowledged by the broker)."""
    c = _client(host, port, client_id)
    acked = [0]
    connected = threading.Event()

    def on_publish(*_: object) -> None:
        acked[0] += 1  # paho's network thread only

    c.on_publish = on_publish
    c.on_connect = lambda *a: connected.set()
    c.connect(host, port)
    c.loop_start()
    if not connected.wait(10):
        out.put({"shard": shard, "error": "could not connect"})
        return
    messages = readings = 0
    behind_max_s = 0.0
    start_wall = time.time()
    start = time.monotonic()
    for topic, payload, n in fleet.shard(shard, shards):
        while True:
            lead_s = readings / readings_per_s - (time.monotonic() - start)
            if lead_s <= 0:
                behind_max_s = max(behind_max_s, -lead_s)
                break
            time.sleep(min(lead_s, 0.005))
        while messages - acked[0] > _AHEAD:
            time.sleep(0.001)
        c.publish(topic, payload, qos=1)
        messages += 1
        readings += n
    published_wall = time.time()
    published = time.monotonic()
    deadline = published + 300
    while acked[0] < messages and time.monotonic() < deadline:
        time.sleep(0.005)
    out.put(
        {
            "shard": shard,
            "messages": messages,
            "readings": readings,
            "acked": acked[0],
            "start_wall": start_wall,
            "published_wall": published_wall,
            "acked_wall": time.time(),
            "publish_s": published - start,
            "behind_max_s": behind_max_s,
        }
    )
    c.disconnect()
    c.loop_stop()


_AHEAD = 4000


def spawn_publishers(
    host: str, port: int, fleet: Fleet, readings_per_s: float, processes: int
) -> tuple[list[Any], Any]:
    """Start ``processes`` spawned publishers, each with an equal share of rate and sites."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded pytest process
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=publish_paced,
            args=(
                host,
                port,
                f"load-pub-{i}",
                fleet,
                i,
                processes,
                readings_per_s / processes,
                out,
            ),
            daemon=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    return procs, out


def collect(procs: list[Any], out: Any, timeout_s: float) -> list[dict]:
    reports = [out.get(timeout=timeout_s) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [r for r in reports if "error" in r]
    assert not errors, errors
    return sorted(reports, key=lambda r: r["shard"])


# A flooding device's messages, in a cycle of 10: a new reading (new seq, new observed_at), six
# exact re-sends of it (duplicates), the same seq and observed_at with another value (a revision:
# accepted, counted as a revision), an exact re-send of that (duplicate), and the same seq again
# at the next observed_at (a seq repeat, as after a stuck counter: accepted).
FLOOD_CYCLE = ("new", "dup", "dup", "dup", "dup", "dup", "dup", "revision", "dup", "same_seq")
FLOOD_DEVICE = "FLOOD-01"


def flood_expected(n: int) -> tuple[int, int, int]:
    """(accepted, duplicates, revisions) among the first ``n`` flood messages."""
    kinds = [FLOOD_CYCLE[i % len(FLOOD_CYCLE)] for i in range(n)]
    dups = kinds.count("dup")
    return n - dups, dups, kinds.count("revision")


def flood_docs(site: tuple[str, str, int], t0: int) -> Any:
    """The flood's payloads, endless, in FLOOD_CYCLE order."""
    feed, site_id, period = site
    seq = slot = -1
    last = b""

    def doc(seq: int, slot: int, flags: list[str]) -> bytes:
        d = reading(feed, site_id, period, FLOOD_DEVICE, 0, seq, t0)
        d["observed_at"] = (
            datetime.fromtimestamp(t0 + slot * period, UTC).astimezone(CST).isoformat()
        )
        d["flags"] = flags
        return json.dumps(d, separators=(",", ":")).encode()

    while True:
        for kind in FLOOD_CYCLE:
            if kind == "new":
                seq, slot = seq + 1, slot + 1
                last = doc(seq, slot, [])
            elif kind == "revision":  # the same key (seq, observed_at), other content
                last = doc(seq, slot, ["calibration"])
            elif kind == "same_seq":  # the same seq at the next observed_at: a new key
                slot += 1
                last = doc(seq, slot, [])
            yield last  # "dup": the previous message's bytes again


def flood_one_device(
    host: str, port: int, site: tuple[str, str, int], t0: int, duration_s: float, out: Any
) -> None:
    """Publish the flood as fast as paho goes for ``duration_s``; report how many messages were
    published (all acknowledged by the broker before the report)."""
    c = _client(host, port, "flood-pub")
    acked = [0]
    c.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
    c.connect(host, port)
    c.loop_start()
    topic = f"city/wushan/{site[0]}/{site[1]}"
    docs = flood_docs(site, t0)
    start_wall = time.time()
    start = time.monotonic()
    n = 0
    for payload in docs:
        if time.monotonic() - start >= duration_s:
            break
        while n - acked[0] > _AHEAD:
            time.sleep(0.0005)
        c.publish(topic, payload, qos=1)
        n += 1
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 120
    while acked[0] < n and time.monotonic() < deadline:
        time.sleep(0.005)
    out.put({"sent": n, "acked": acked[0], "publish_s": elapsed, "start_wall": start_wall})
    c.disconnect()
    c.loop_stop()


def spawn_flood(host: str, port: int, site: tuple[str, str, int], duration_s: float) -> Any:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    # observed_at slots back from now: two a cycle, at most ~20,000 messages/s.
    slots = int(duration_s * 20_000 / 5) + 10
    t0 = (int(time.time()) - slots * site[2] - 3600) // 3600 * 3600
    proc = ctx.Process(
        target=flood_one_device, args=(host, port, site, t0, duration_s, out), daemon=True
    )
    proc.start()
    return proc, out


def normal_traffic(
    host: str,
    port: int,
    sites: list[tuple[str, str, int]],
    msgs_per_s: float,
    stop: threading.Event,
    sent: dict[tuple[str, str, int], float],
) -> None:
    """One device per site (``NM0000``...), single-reading messages round-robin at ``msgs_per_s``
    until ``stop``; ``sent[(site, device, seq)]`` = wall time of the publish call."""
    c = _client(host, port, "normal-pub")
    acked = [0]
    c.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
    c.connect(host, port)
    c.loop_start()
    t0 = (int(time.time()) - 2 * 86400) // 3600 * 3600  # far from now, a few hours long
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        lead = n / msgs_per_s - (time.monotonic() - start)
        if lead > 0:
            time.sleep(lead)
            continue
        i, seq = n % len(sites), n // len(sites)
        feed, site, period = sites[i]
        dev = device_id("NM", i)
        doc = reading(feed, site, period, dev, i, seq, t0)
        sent[(site, dev, seq)] = time.time()
        c.publish(f"city/wushan/{feed}/{site}", json.dumps(doc).encode(), qos=1)
        n += 1
    deadline = time.monotonic() + 120
    while acked[0] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert acked[0] == n, f"broker acknowledged {acked[0]} of {n}"
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- measuring the service


@contextmanager
def reaped(proc: Any) -> Iterator[Any]:
    """Kill ``proc`` (a Popen) on the way out if a failed assertion left it running."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@dataclass
class Sample:
    t: float  # monotonic seconds
    service_mb: float
    writer_mb: float
    status: dict

    @property
    def total_mb(self) -> float:
        return self.service_mb + self.writer_mb


@dataclass
class Sampler:
    """RSS of ``pid`` and of its children (the writer process) and the status, every ``every_s``."""

    pid: int
    read_status: Any
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        proc = psutil.Process(self.pid)
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                service = proc.memory_info().rss
                writer = 0
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        writer += child.memory_info().rss
            except psutil.NoSuchProcess:
                return
            self.samples.append(Sample(t, service / 2**20, writer / 2**20, self.read_status()))
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - t)))


def write_samples_csv(samples: list[Sample], path: Path, t0: float) -> None:
    """The RSS and counter series, for the write-up (seconds from ``t0``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["t_s,service_mb,writer_mb,total_mb,records_accepted,messages_pending"]
    for s in samples:
        rec, msg = s.status.get("records", {}), s.status.get("messages", {})
        lines.append(
            f"{s.t - t0:.2f},{s.service_mb:.1f},{s.writer_mb:.1f},{s.total_mb:.1f},"
            f"{rec.get('accepted', '')},{msg.get('pending', '')}"
        )
    path.write_text("\n".join(lines) + "\n")


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return 60.0 * sxy / sxx if sxx else 0.0
