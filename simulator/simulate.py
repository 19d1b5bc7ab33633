"""`citypipe simulate`: realistic sensor traffic for the contract v1 feeds, with faults on request.

Two halves:

- ``generate(catalogue, start, days, seed, faults, feeds)``: a pure, deterministic generator of
  ``SimMessage`` (topic, payload bytes, kind, expected outcome per record). Same arguments, same
  bytes. The values come from ``simulator.sim_model``; faults (gaps, re-deliveries, out-of-order,
  gateway backlog batches, malformed payloads of every reason code, unit variants, stuck sensors,
  spikes) are injected by their own random streams, so turning faults on does not change the
  clean readings.
- ``publish(messages, url)``: paho-mqtt 2.x, QoS 1, MQTT 5 with a 3.1.1 fallback, a cap on
  in-flight messages (paho cannot track more than 65,535 QoS 1 ids), progress on a TTY. The URL
  and the client come from ``common.mqtt``, as the ingest service's do.

``--out FILE.jsonl`` writes the messages instead of publishing (see ``write_jsonl``/``read_jsonl``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import itertools
import json
import logging
import math
import select
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from common.catalogue import FEEDS, Catalogue, Site
from common.contract import MAX_BATCH, MAX_DATES, REASONS
from common.mqtt import FALLBACK_ORDER, ProtocolVersion, make_client, parse_broker_url
from common.units import ALTERNATIVES, from_canonical
from simulator.sim_model import (
    MINUTES,
    AirModel,
    Climate,
    TrafficModel,
    WaterloggingModel,
    WaterModel,
    rng_for,
)

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from common.settings import Settings

log = logging.getLogger(__name__)

ACCEPT = "accept"
DUPLICATE = "duplicate"
BACKLOG_MAX = 100  # readings per gateway flush message


@dataclass(frozen=True, slots=True)
class SimMessage:
    topic: str
    payload: bytes
    # reading | batch | duplicate | out_of_order | malformed | unit_variant | stuck | spike | flagged
    kind: str
    # Message-level summary: "accept", "duplicate", a reason code, or "mixed" (a batch with both).
    expected: str
    # One outcome per record, in order ("accept", "duplicate" or a reason code).
    outcomes: tuple[str, ...]
    # When the device (or gateway) sends it, UTC; --realtime sleeps until then.
    sent_at: datetime

    @property
    def records(self) -> int:
        return len(self.outcomes)


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault rates. Per-message rates are probabilities per reading; per-day ones per device-day."""

    duplicate: float = 0.0  # exact re-delivery of an accepted message, a little later
    out_of_order: float = 0.0  # a message held back and sent a few minutes late
    malformed: float = 0.0  # the reading replaced by a contract-breaking message
    unit_variant: float = 0.0  # values expressed in an allowed alternative unit
    spike: float = 0.0  # one implausible value (validation's job, not the contract's)
    flagged: float = 0.0  # maintenance / calibration flags
    gap: float = 0.0  # per device-day: a silent period (readings lost, seq keeps counting)
    backlog: float = 0.0  # per device-day: an outage whose readings arrive later as batches
    stuck: float = 0.0  # per device-day: the sensor repeats one value for a while

    @classmethod
    def preset(cls, name: str) -> Faults:
        if name == "none":
            return cls()
        if name == "default":
            return cls(
                duplicate=0.002,
                out_of_order=0.002,
                malformed=0.001,
                unit_variant=0.01,
                spike=0.0005,
                flagged=0.001,
                gap=0.05,
                backlog=0.02,
                stuck=0.02,
            )
        if name == "heavy":
            return cls(
                duplicate=0.02,
                out_of_order=0.02,
                malformed=0.02,
                unit_variant=0.05,
                spike=0.005,
                flagged=0.01,
                gap=0.3,
                backlog=0.2,
                stuck=0.2,
            )
        raise ValueError(f"unknown fault preset {name!r} (none, default, heavy)")

    def with_overrides(self, pairs: Iterable[str]) -> Faults:
        """Apply ``name=rate`` overrides, e.g. from ``--fault duplicate=0.01``."""
        names = {f.name for f in fields(self)}
        changes: dict[str, float] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or name not in names:
                raise ValueError(
                    f"--fault {pair!r}: expected NAME=RATE, NAME one of {sorted(names)}"
                )
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"--fault {pair!r}: rate must be between 0 and 1")
            changes[name] = rate
        return replace(self, **changes)


# Reasons the simulator produces as whole messages vs as one bad reading (possibly inside a batch).
# Every message stays inside the ingest subscription city/{city}/+/+, so that each one is
# received and the accounting adds up. That rules out ``wrong_city``: a broker never delivers it
# (the parser's corpus covers it), and ``bad_topic`` can only be an empty site level.
WHOLE_MESSAGE_REASONS = (
    "too_large",
    "not_utf8",
    "too_deep",
    "not_json",
    "bad_topic",
    "unknown_feed",
    "not_object",
    "empty_batch",
    "batch_too_large",
    "unknown_site",
    "duplicate_key",
    "too_many_dates",
)
READING_REASONS = (
    "missing_field",
    "wrong_type",
    "unknown_schema",
    "schema_mismatch",
    "site_mismatch",
    "bad_device",
    "negative_seq",
    "bad_period",
    "period_mismatch",
    "bad_timestamp",
    "naive_timestamp",
    "too_old",
    "future_timestamp",
    "bad_number",
    "no_values",
    "unknown_field",
    "unknown_unit",
    "bad_flag",
    "bad_lane",
    "bad_direction",
    "lane_not_allowed",
)
MALFORMED_REASONS = WHOLE_MESSAGE_REASONS + READING_REASONS
_TRAFFIC_ONLY = {"bad_lane", "bad_direction"}
_NOT_TRAFFIC = {"lane_not_allowed"}
assert set(MALFORMED_REASONS) == set(REASONS) - {"internal_error", "wrong_city"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _summary(outcomes: tuple[str, ...]) -> str:
    first = outcomes[0]
    return first if all(o == first for o in outcomes) else "mixed"


class _Channel:
    """One stream of readings: a device, and for traffic one lane of it."""

    __slots__ = (
        "backlog",
        "device",
        "direction",
        "feed",
        "gap",
        "lane",
        "model",
        "pending",
        "period_s",
        "seq",
        "site",
        "stuck",
        "stuck_values",
        "topic",
    )

    def __init__(
        self, site: Site, device: str, lane: int | None, model: Any, topic: str, seq: list[int]
    ) -> None:
        self.site = site
        self.feed = site.feed
        self.device = device
        self.lane = lane
        self.model = model
        self.topic = topic
        self.period_s = site.period_s
        self.direction = model.direction(lane) if lane is not None else None
        self.seq = seq  # [counter], shared by the lanes of one traffic device
        self.gap: tuple[int, int] | None = None  # local minutes [from, to) of the day
        self.backlog: tuple[int, int] | None = None
        self.stuck: tuple[int, int] | None = None
        self.stuck_values: dict[str, Any] | None = None
        # Readings held during a backlog outage: (reading dict or raw bytes, outcome).
        self.pending: list[tuple[Any, str]] = []


class Generator:
    """Deterministic message generator; ``iter(Generator(...))`` yields ``SimMessage``."""

    def __init__(
        self,
        catalogue: Catalogue,
        start: date,
        days: int,
        seed: int = 42,
        faults: Faults | None = None,
        feeds: Iterable[str] | None = None,
        *,
        max_payload_bytes: int = 262144,
    ) -> None:
        self.catalogue = catalogue
        self.start = start
        self.days = days
        self.seed = seed
        self.faults = faults or Faults()
        self.feeds = tuple(feeds) if feeds else FEEDS
        unknown = set(self.feeds) - set(FEEDS)
        if unknown:
            raise ValueError(f"unknown feeds {sorted(unknown)}")
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        self.max_payload_bytes = max_payload_bytes
        self.city = catalogue.city_id
        self.tz = ZoneInfo(catalogue.timezone)
        self.climate = Climate(seed)
        self.stats: Counter[str] = Counter()
        self._fault_rng = rng_for(seed, "faults")
        self._malformed_i = 0
        self._channels = self._build_channels()

    # ------------------------------------------------------------------ setup

    def _build_channels(self) -> list[_Channel]:
        out: list[_Channel] = []
        for site in sorted(self.catalogue.sites.values(), key=lambda s: s.site_id):
            if site.feed not in self.feeds:
                continue
            topic = f"city/{self.city}/{site.feed}/{site.site_id}"
            for device in site.device_ids:
                seq = [0]
                if site.feed == "traffic":
                    traffic = TrafficModel(site, self.seed)
                    for lane in range(1, traffic.lanes + 1):
                        out.append(_Channel(site, device, lane, traffic, topic, seq))
                    continue
                model: AirModel | WaterModel | WaterloggingModel
                if site.feed == "water":
                    model = WaterModel(site, self.seed, self.climate)
                elif site.feed == "air":
                    model = AirModel(site, self.seed)
                else:
                    model = WaterloggingModel(site, self.seed)
                out.append(_Channel(site, device, None, model, topic, seq))
        return out

    def _plan_day(self, day: date) -> None:
        """Per device-day faults: where the gap, backlog outage and stuck spell fall."""
        f = self.faults
        for ch in self._channels:
            r = rng_for(self.seed, "day-faults", ch.site.site_id, ch.device, ch.lane, day)
            ch.gap = ch.backlog = ch.stuck = None
            span = max(ch.period_s // 60, 1)
            if f.gap and r.random() < f.gap:
                length = max(span * 2, r.randint(10, 120))
                begin = r.randrange(0, MINUTES - length)
                ch.gap = (begin, begin + length)
            if f.backlog and r.random() < f.backlog:
                length = max(span * 3, r.randint(30, 300))
                begin = r.randrange(0, MINUTES - length)
                ch.backlog = (begin, begin + length)
            if f.stuck and r.random() < f.stuck:
                length = max(span * 5, r.randint(30, 240))
                begin = r.randrange(0, MINUTES - length)
                ch.stuck = (begin, begin + length)
            ch.stuck_values = None

    # ------------------------------------------------------------------ main loop

    def __iter__(self) -> Iterator[SimMessage]:
        heap: list[tuple[datetime, int, SimMessage]] = []  # delayed messages by send time
        counter = itertools.count()
        for n in range(self.days):
            day = self.start + timedelta(days=n)
            self._plan_day(day)
            weather = self.climate.day(day)
            midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
            midnight_utc = midnight.astimezone(UTC)
            for minute in range(MINUTES):
                due = [c for c in self._channels if (minute * 60) % c.period_s == 0]
                if not due:
                    continue
                local = midnight + timedelta(minutes=minute)
                observed_iso = local.isoformat()
                now_utc = midnight_utc + timedelta(minutes=minute)
                while heap and heap[0][0] <= now_utc:
                    yield heapq.heappop(heap)[2]
                for ch in due:
                    for msg, delay_min in self._emit(
                        ch, day, minute, weather, observed_iso, now_utc
                    ):
                        if delay_min:
                            sent = now_utc + timedelta(minutes=delay_min)
                            heapq.heappush(heap, (sent, next(counter), replace(msg, sent_at=sent)))
                        else:
                            yield msg
            # A backlog still open at the end of the run flushes then (the gateway came back).
        end_utc = datetime.combine(
            self.start + timedelta(days=self.days), datetime.min.time(), tzinfo=self.tz
        ).astimezone(UTC)
        for ch in self._channels:
            if ch.pending:
                yield from self._flush(ch, end_utc)
        while heap:
            yield heapq.heappop(heap)[2]

    def _emit(
        self,
        ch: _Channel,
        day: date,
        minute: int,
        weather: Any,
        observed_iso: str,
        now_utc: datetime,
    ) -> Iterator[tuple[SimMessage, int]]:
        f = self.faults
        r = self._fault_rng
        # Values are drawn even during a gap so that the model's own random stream (and so
        # every later clean value) does not depend on the fault settings.
        if ch.feed == "traffic":
            values = ch.model.values(day, minute, weather, ch.lane, ch.period_s)
        elif ch.feed == "waterlogging":
            values = ch.model.values(day, minute, weather, ch.period_s)
        else:
            values = ch.model.values(day, minute, weather)
        ch.seq[0] += 1
        seq = ch.seq[0]
        kind = "reading"

        if ch.gap and ch.gap[0] <= minute < ch.gap[1]:
            self.stats["gap_readings"] += 1
            return
        if ch.stuck and ch.stuck[0] <= minute < ch.stuck[1]:
            if ch.stuck_values is None:
                ch.stuck_values = dict(values)
            values = dict(ch.stuck_values)
            kind = "stuck"

        reading: dict[str, Any] = {
            "schema": f"{ch.feed}/v1",
            "site_id": ch.site.site_id,
            "device_id": ch.device,
            "seq": seq,
            "observed_at": observed_iso,
            "period_s": ch.period_s,
        }
        if ch.lane is not None:
            reading["lane"] = ch.lane
            reading["direction"] = ch.direction
        reading["values"] = values

        # Per-reading faults; draws happen only when the rate is set (none = no draws at all).
        if f.spike and r.random() < f.spike:
            values = reading["values"] = dict(values)
            self._spike(ch.feed, values, r)
            kind = "spike"
        if f.flagged and r.random() < f.flagged:
            reading["flags"] = [r.choice(("maintenance", "calibration"))]
            kind = "flagged"
        if f.unit_variant and r.random() < f.unit_variant and ch.feed in ALTERNATIVES:
            self._unit_variant(ch.feed, reading, r)
            kind = "unit_variant"

        in_backlog = bool(ch.backlog and ch.backlog[0] <= minute < ch.backlog[1])
        if f.malformed and r.random() < f.malformed:
            reason = self._next_reason(ch.feed, in_backlog)
            self.stats[f"malformed_{reason}"] += 1
            if reason in READING_REASONS:
                bad = self._bad_reading(reason, reading, ch, r)
                if in_backlog:
                    ch.pending.append((bad, reason))
                    return
                yield self._message(ch.topic, bad, "malformed", (reason,), now_utc), 0
                return
            topic, payload = self._bad_message(reason, reading, ch, r)
            yield SimMessage(topic, payload, "malformed", reason, (reason,), now_utc), 0
            return

        if in_backlog:
            ch.pending.append((reading, ACCEPT))
            if minute + ch.period_s // 60 >= ch.backlog[1]:  # type: ignore[index]
                yield from ((m, 0) for m in self._flush(ch, now_utc))
            return
        if ch.pending:  # the outage ended between two readings
            yield from ((m, 0) for m in self._flush(ch, now_utc))

        msg = self._message(ch.topic, reading, kind, (ACCEPT,), now_utc)
        delay = 0
        if f.out_of_order and r.random() < f.out_of_order:
            delay = r.randint(2, 10)
            msg = replace(msg, kind="out_of_order")
        yield msg, delay
        if f.duplicate and r.random() < f.duplicate:
            yield (
                replace(msg, kind=DUPLICATE, expected=DUPLICATE, outcomes=(DUPLICATE,)),
                (delay + r.randint(1, 30)),
            )

    def _message(
        self, topic: str, reading: Any, kind: str, outcomes: tuple[str, ...], sent: datetime
    ) -> SimMessage:
        return SimMessage(topic, _dumps(reading), kind, _summary(outcomes), outcomes, sent)

    def _flush(self, ch: _Channel, now_utc: datetime) -> Iterator[SimMessage]:
        """The gateway is back: its held readings go out as batches of up to BACKLOG_MAX."""
        items, ch.pending = ch.pending, []
        for i in range(0, len(items), BACKLOG_MAX):
            chunk = items[i : i + BACKLOG_MAX]
            outcomes = tuple(o for _, o in chunk)
            payload = _dumps([x for x, _ in chunk])
            self.stats["backlog_batches"] += 1
            msg = SimMessage(ch.topic, payload, "batch", _summary(outcomes), outcomes, now_utc)
            yield msg
            if (
                self.faults.duplicate
                and all(o == ACCEPT for o in outcomes)
                and self._fault_rng.random() < self.faults.duplicate * 10
            ):
                # Gateways that lose the PUBACK send the whole flush again.
                dup = (DUPLICATE,) * len(outcomes)
                yield replace(msg, kind=DUPLICATE, expected=DUPLICATE, outcomes=dup)

    # ------------------------------------------------------------------ faults

    def _next_reason(self, feed: str, in_batch: bool) -> str:
        # Cycle through every reason so that a run with enough malformed messages covers all.
        while True:
            reason = MALFORMED_REASONS[self._malformed_i % len(MALFORMED_REASONS)]
            self._malformed_i += 1
            if feed != "traffic" and reason in _TRAFFIC_ONLY:
                continue
            if feed == "traffic" and reason in _NOT_TRAFFIC:
                continue
            if in_batch and reason not in READING_REASONS:
                continue
            return reason

    @staticmethod
    def _spike(feed: str, values: dict[str, Any], r: Any) -> None:
        key = {"air": "pm25", "water": "nh3n", "waterlogging": "depth_cm", "traffic": "speed_kmh"}[
            feed
        ]
        v = values.get(key)
        if v is None:
            return
        values[key] = round(v * r.uniform(5, 20) + (80.0 if feed == "waterlogging" else 0.0), 1)

    @staticmethod
    def _unit_variant(feed: str, reading: dict[str, Any], r: Any) -> None:
        values = dict(reading["values"])
        units: dict[str, str] = {}
        for fname, alts in ALTERNATIVES[feed].items():
            if values.get(fname) is None:
                continue
            unit = r.choice(sorted(alts))
            values[fname] = from_canonical(feed, fname, values[fname], unit)
            units[fname] = unit
        if units:
            reading["values"] = values
            reading["units"] = units

    def _bad_reading(
        self, reason: str, reading: dict[str, Any], ch: _Channel, r: Any
    ) -> dict[str, Any]:
        d = dict(reading)
        d["values"] = dict(reading["values"])
        feed = ch.feed
        first = next(iter(d["values"]))
        if reason == "missing_field":
            del d[
                r.choice(
                    ("schema", "site_id", "device_id", "seq", "observed_at", "period_s", "values")
                )
            ]
        elif reason == "wrong_type":
            d["seq"] = str(d["seq"])
        elif reason == "unknown_schema":
            d["schema"] = f"{feed}/v9"
        elif reason == "schema_mismatch":
            d["schema"] = ("water" if feed == "air" else "air") + "/v1"
        elif reason == "site_mismatch":
            others = [
                s.site_id for s in self.catalogue.by_feed(feed) if s.site_id != ch.site.site_id
            ]
            d["site_id"] = others[0] if others else "XX-OTHER-01"
        elif reason == "bad_device":
            d["device_id"] = ""
        elif reason == "negative_seq":
            d["seq"] = -d["seq"]
        elif reason == "bad_period":
            d["period_s"] = 0
        elif reason == "period_mismatch":
            d["period_s"] = ch.period_s + 1
        elif reason == "bad_timestamp":
            d["observed_at"] = d["observed_at"].replace("T", " at ")[:-6] + " CST"
        elif reason == "naive_timestamp":
            d["observed_at"] = d["observed_at"][:-6]
        elif reason == "future_timestamp":
            d["observed_at"] = "2099-01-01T00:00:00+08:00"
        elif reason == "too_old":
            d["observed_at"] = "0001-01-01T00:00:00Z"
        elif reason == "no_values":
            d["values"] = {}
        elif reason == "bad_number":
            d["values"][first] = r.choice(("n/a", math.nan, math.inf, "12.5", True))
        elif reason == "unknown_field":
            d["values"]["battery_v"] = 3.6
        elif reason == "unknown_unit":
            d["units"] = {first: "furlongs"}
        elif reason == "bad_flag":
            d["flags"] = ["low_battery"]
        elif reason == "bad_lane":
            d["lane"] = 0
        elif reason == "bad_direction":
            d["direction"] = "sideways"
        elif reason == "lane_not_allowed":
            d["lane"] = 1
        else:  # pragma: no cover - guarded by MALFORMED_REASONS
            raise ValueError(reason)
        return d

    def _bad_message(
        self, reason: str, reading: dict[str, Any], ch: _Channel, r: Any
    ) -> tuple[str, bytes]:
        topic = ch.topic
        good = _dumps(reading)
        feed, site = ch.feed, ch.site.site_id
        if reason == "too_large":
            return topic, _dumps({**reading, "padding": "x" * (self.max_payload_bytes + 1)})
        if reason == "not_utf8":
            return topic, good.replace(b'"device_id":"', b'"device_id":"\xff\xfe', 1)
        if reason == "too_deep":
            return topic, b"[" * 64 + good + b"]" * 64
        if reason == "not_json":
            return topic, good[: len(good) // 2]
        if reason == "bad_topic":
            return f"city/{self.city}/{feed}/", good
        if reason == "unknown_feed":
            return f"city/{self.city}/noise/{site}", good
        if reason == "not_object":
            return topic, r.choice((b"42", b'"reading"', b"null", b"true"))
        if reason == "empty_batch":
            return topic, b"[]"
        if reason == "batch_too_large":
            return topic, b"[" + b",".join([b"{}"] * (MAX_BATCH + 1)) + b"]"
        if reason == "unknown_site":
            ghost = f"{site}-X"
            return f"city/{self.city}/{feed}/{ghost}", _dumps({**reading, "site_id": ghost})
        if reason == "duplicate_key":
            # A dict cannot hold a key twice: splice the repeat into the encoded text.
            return topic, good.replace(
                b'"values":', b'"flags":["maintenance"],"flags":[],"values":', 1
            )
        if reason == "too_many_dates":
            when = datetime.fromisoformat(reading["observed_at"])
            batch = [
                {
                    **reading,
                    "seq": reading["seq"] + i,
                    "observed_at": (when - timedelta(days=i)).isoformat(),
                }
                for i in range(MAX_DATES + 1)
            ]
            return topic, _dumps(batch)
        raise ValueError(reason)  # pragma: no cover


def generate(
    catalogue: Catalogue,
    start: date,
    days: int,
    seed: int = 42,
    faults: Faults | str | None = None,
    feeds: Iterable[str] | None = None,
    *,
    max_payload_bytes: int = 262144,
) -> Iterator[SimMessage]:
    """Yield the messages of ``days`` local days from ``start`` in send order (deterministic)."""
    if isinstance(faults, str):
        faults = Faults.preset(faults)
    return iter(
        Generator(catalogue, start, days, seed, faults, feeds, max_payload_bytes=max_payload_bytes)
    )


def count_outcomes(messages: Iterable[SimMessage]) -> Counter[str]:
    """Records per expected outcome: what the ingest service should count."""
    c: Counter[str] = Counter()
    for m in messages:
        c.update(m.outcomes)
    return c


# ---------------------------------------------------------------------------- JSONL


def write_jsonl(messages: Iterable[SimMessage], path: Path) -> int:
    """One JSON object per line; payload as text when UTF-8, else base64 (``payload_b64``)."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for m in messages:
            line: dict[str, Any] = {"topic": m.topic}
            try:
                line["payload"] = m.payload.decode("utf-8")
            except UnicodeDecodeError:
                line["payload_b64"] = base64.b64encode(m.payload).decode("ascii")
            line.update(
                kind=m.kind,
                expected=m.expected,
                outcomes=list(m.outcomes),
                sent_at=m.sent_at.isoformat(),
            )
            fh.write(json.dumps(line, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[SimMessage]:
    with open(path, encoding="utf-8") as fh:
        for text in fh:
            d = json.loads(text)
            payload = (
                d["payload"].encode("utf-8")
                if "payload" in d
                else base64.b64decode(d["payload_b64"])
            )
            yield SimMessage(
                d["topic"],
                payload,
                d["kind"],
                d["expected"],
                tuple(d["outcomes"]),
                datetime.fromisoformat(d["sent_at"]),
            )


# ---------------------------------------------------------------------------- publisher


@dataclass(slots=True)
class PublishStats:
    messages: int = 0
    records: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    protocol: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"published {self.messages} messages ({self.records} readings, {self.bytes} bytes) "
            f"in {self.elapsed_s:.2f} s: {self.rate:,.0f} msgs/s over {self.protocol}"
        )


class Publisher:
    """A QoS 1 publisher that never has more than ``max_inflight`` messages unacknowledged.

    Single-threaded on purpose: ``publish`` writes straight to the socket and the loop is driven
    here between publishes, so no second thread fights for the GIL at 25k+ msgs/s.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        qos: int = 1,
        max_inflight: int = 1000,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.broker = parse_broker_url(url)
        self.host, self.port = self.broker.host, self.broker.port
        self.username = self.broker.username or username
        # Secrets come only from the environment or a *_FILE (settings), never from a URL.
        if self.broker.password_in_url:
            log.warning("password in the MQTT URL ignored: use CITYPIPE_MQTT_PASSWORD(_FILE)")
        self.password = password
        self.client_id = client_id
        self.qos = qos
        # paho tracks message ids in 16 bits: never more than 65,535 QoS 1 messages in flight.
        self.max_inflight = max(1, min(int(max_inflight), 65535))
        self.connect_timeout_s = connect_timeout_s
        self.outstanding = 0
        self.protocol = ""
        self._connected = False
        self._refused: Any = None
        self.client = self._connect()

    def _make_client(self, version: ProtocolVersion) -> mqtt.Client:
        client = make_client(
            self.broker,
            version,
            client_id=self.client_id,
            username=self.username,
            password=self.password,
        )
        # paho's own cap rescans every queued message on each PUBACK (O(n) per ack); 0 turns it
        # off and the cap is enforced here instead (``outstanding``), which is O(1).
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt

        last: Exception | None = None
        for version in FALLBACK_ORDER:
            name = f"MQTT {version}"
            client = self._make_client(version)
            self._connected, self._refused = False, None
            try:
                client.connect(self.host, self.port, keepalive=60)
            except OSError as exc:  # the broker is not there at all: no point in a fallback
                raise ConnectionError(
                    f"cannot reach MQTT broker {self.host}:{self.port}: {exc}"
                ) from exc
            deadline = time.monotonic() + self.connect_timeout_s
            self.client = client
            while not self._connected and self._refused is None and time.monotonic() < deadline:
                rc = self._loop(0.05)
                if rc not in (mqtt.MQTT_ERR_SUCCESS,) and not self._connected:
                    self._refused = self._refused or f"connection closed ({mqtt.error_string(rc)})"
            if self._connected:
                self.protocol = name
                log.info("connected to %s:%s with %s", self.host, self.port, name)
                return client
            last = ConnectionError(f"{name} refused by {self.host}:{self.port}: {self._refused}")
            log.info("%s; trying the next protocol version", last)
            with contextlib.suppress(Exception):
                client.disconnect()
        raise last or ConnectionError("cannot connect")

    # paho v2 callbacks
    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            return
        self._connected = True
        # MQTT 5: never exceed what the broker says it can receive unacknowledged.
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        if receive_max:
            self.max_inflight = min(self.max_inflight, int(receive_max))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self._connected = False

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, props: Any
    ) -> None:
        if self.qos:  # QoS 0 "publishes" are reported as soon as written and never counted
            self.outstanding -= 1

    def _loop(self, timeout: float) -> int:
        """One turn of paho's network loop, driven by hand.

        ``client.loop()`` would also create paho's wake-up socket pair, after which every
        ``publish`` costs a second syscall; the external-loop API (loop_read/loop_write/loop_misc)
        avoids that.
        """
        import paho.mqtt.client as mqtt

        client = self.client
        sock = client.socket()
        if sock is None:
            return int(mqtt.MQTT_ERR_NO_CONN)
        wlist = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock], wlist, [], timeout)
        except (OSError, ValueError):
            return int(mqtt.MQTT_ERR_CONN_LOST)
        rc = mqtt.MQTT_ERR_SUCCESS
        if readable:
            rc = client.loop_read()
        if rc == mqtt.MQTT_ERR_SUCCESS and (writable or client.want_write()):
            rc = client.loop_write()
        if rc == mqtt.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        return int(rc)

    def _pump(self, timeout: float) -> None:
        import paho.mqtt.client as mqtt

        rc = self._loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS or not self._connected:
            self._reconnect()

    def _reconnect(self) -> None:
        # paho keeps unacknowledged QoS 1 messages and sends them again after reconnecting.
        delay = 0.2
        for _ in range(12):
            try:
                self._connected = False
                self.client.reconnect()
                deadline = time.monotonic() + self.connect_timeout_s
                while not self._connected and time.monotonic() < deadline:
                    self._loop(0.05)
                if self._connected:
                    log.warning("reconnected to %s:%s", self.host, self.port)
                    return
            except OSError as exc:
                log.warning("reconnect failed: %s", exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise ConnectionError(f"lost the MQTT broker {self.host}:{self.port}")

    def publish_all(
        self,
        messages: Iterable[SimMessage],
        *,
        realtime: bool = False,
        progress: bool | None = None,
        total: int | None = None,
    ) -> PublishStats:
        import paho.mqtt.client as mqtt

        stats = PublishStats(protocol=self.protocol)
        bar = None
        if progress is None:
            progress = sys.stderr.isatty()
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="msg", unit_scale=True, desc="simulate", file=sys.stderr)
        client = self.client
        qos = self.qos
        cap = self.max_inflight
        t0 = time.perf_counter()
        n = 0
        for m in messages:
            if realtime:
                wait = (m.sent_at - datetime.now(UTC)).total_seconds()
                while wait > 0:  # keep the connection served while we wait for the wall clock
                    self._pump(min(wait, 0.5))
                    wait = (m.sent_at - datetime.now(UTC)).total_seconds()
            while self.outstanding >= cap:
                self._pump(0.01)
            while True:
                info = client.publish(m.topic, m.payload, qos=qos)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    break
                if info.rc == mqtt.MQTT_ERR_NO_CONN:
                    self._reconnect()
                    continue
                raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
            if qos:
                self.outstanding += 1
            n += 1
            stats.records += len(m.outcomes)
            stats.bytes += len(m.payload)
            if n & 255 == 0:
                self._pump(0)
                if bar is not None:
                    bar.update(256)
        while self.outstanding > 0:  # wait for the last PUBACKs
            self._pump(0.05)
        stats.messages = n
        stats.elapsed_s = time.perf_counter() - t0
        if bar is not None:
            bar.update(n - bar.n)
            bar.close()
        return stats

    def close(self) -> None:
        try:
            self.client.disconnect()
            self._loop(0.1)
        except Exception:  # closing a dead connection is fine
            pass


def publish(
    messages: Iterable[SimMessage],
    url: str,
    *,
    realtime: bool = False,
    qos: int = 1,
    max_inflight: int = 1000,
    username: str | None = None,
    password: str | None = None,
    client_id: str = "",
    progress: bool | None = None,
    total: int | None = None,
) -> PublishStats:
    """Publish ``messages`` to the broker at ``url`` and wait for every PUBACK."""
    pub = Publisher(
        url,
        client_id=client_id,
        username=username,
        password=password,
        qos=qos,
        max_inflight=max_inflight,
    )
    try:
        return pub.publish_all(messages, realtime=realtime, progress=progress, total=total)
    finally:
        pub.close()


# ---------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="publish realistic sensor readings (with faults) for the contract v1 feeds",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        help="first local day (default: yesterday; today with --realtime)",
    )
    p.add_argument("--days", type=int, default=1, help="number of local days (default 1)")
    p.add_argument("--feeds", default=",".join(FEEDS), help="comma-separated feeds (default all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--faults", default="default", choices=("none", "default", "heavy"), help="fault preset"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help="override one fault rate, e.g. --fault duplicate=0.01 (repeatable)",
    )
    p.add_argument("--realtime", action="store_true", help="send each message at its wall time")
    p.add_argument(
        "--url",
        help="broker URL, mqtt://[user@]host:port or mqtts://... (default: CITYPIPE_MQTT_URL)",
    )
    p.add_argument("--qos", type=int, default=1, choices=(0, 1))
    p.add_argument("--max-inflight", type=int, default=1000, help="unacknowledged messages cap")
    p.add_argument("--limit", type=int, help="stop after N messages")
    p.add_argument("--out", type=Path, help="write JSONL (topic, payload, outcomes) instead")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, summary only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from common.catalogue import load_catalogue

    catalogue = load_catalogue(settings.reference_dir, settings.city)
    tz = ZoneInfo(settings.timezone)
    # Default: yesterday (all in the past, sent flat out), or today when following the clock.
    start = args.start or (datetime.now(tz).date() - timedelta(days=0 if args.realtime else 1))
    feeds = [f.strip() for f in args.feeds.split(",") if f.strip()]
    try:
        faults = Faults.preset(args.faults).with_overrides(args.fault)
        gen = Generator(
            catalogue,
            start,
            args.days,
            args.seed,
            faults,
            feeds,
            max_payload_bytes=settings.max_payload_bytes,
        )
    except ValueError as exc:
        print(f"citypipe simulate: {exc}", file=sys.stderr)
        return 2
    messages: Iterator[SimMessage] = iter(gen)
    if args.limit is not None:
        messages = itertools.islice(messages, args.limit)

    if args.out:
        t0 = time.perf_counter()
        expected_out: Counter[str] = Counter()
        n = write_jsonl(_tee_outcomes(messages, expected_out), args.out)
        print(f"wrote {n} messages to {args.out} in {time.perf_counter() - t0:.2f} s")
        print(_expected_line(expected_out))
        return 0

    url = args.url or settings.mqtt_url
    if not url:
        print("citypipe simulate: no broker; pass --url or set CITYPIPE_MQTT_URL", file=sys.stderr)
        return 2
    end = datetime.combine(start + timedelta(days=args.days), datetime.min.time(), tzinfo=tz)
    if not args.realtime and end > datetime.now(tz) + timedelta(
        seconds=settings.future_tolerance_s
    ):
        print(
            f"citypipe simulate: {start} + {args.days} day(s) reaches into the future; "
            "ingest would quarantine those readings. Use --realtime or an earlier --start.",
            file=sys.stderr,
        )
        return 2
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    total_published = PublishStats()
    try:
        pub = Publisher(
            url,
            username=settings.mqtt_username,
            password=password,
            qos=args.qos,
            max_inflight=args.max_inflight,
        )
    except ValueError as exc:  # a malformed broker URL
        print(f"citypipe simulate: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"citypipe simulate: {exc}", file=sys.stderr)
        return 1
    progress = False if args.no_progress else None
    expected: Counter[str] = Counter()
    messages = _tee_outcomes(messages, expected)
    try:
        if args.realtime:
            total_published = pub.publish_all(messages, realtime=True, progress=progress)
        else:
            # Generate ahead in chunks so the publish loop runs flat out (and memory stays bounded).
            while chunk := list(itertools.islice(messages, 100_000)):
                s = pub.publish_all(chunk, progress=progress, total=len(chunk))
                total_published.messages += s.messages
                total_published.records += s.records
                total_published.bytes += s.bytes
                total_published.elapsed_s += s.elapsed_s
                total_published.protocol = s.protocol
    finally:
        pub.close()
    print(total_published.line())
    print(_expected_line(expected))
    return 0


def _tee_outcomes(messages: Iterable[SimMessage], into: Counter[str]) -> Iterator[SimMessage]:
    for m in messages:
        into.update(m.outcomes)
        yield m


def _expected_line(expected: Counter[str]) -> str:
    """What ingest should count for these records (received = accepted + quarantined + dups)."""
    accepted = expected.get(ACCEPT, 0)
    duplicates = expected.get(DUPLICATE, 0)
    reasons = {k: v for k, v in expected.items() if k not in (ACCEPT, DUPLICATE)}
    line = (
        f"expected records: received={accepted + duplicates + sum(reasons.values())} "
        f"accepted={accepted} quarantined={sum(reasons.values())} duplicates={duplicates}"
    )
    if reasons:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) + ")"
    return line
