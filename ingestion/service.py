"""`citypipe ingest`: the durable MQTT ingest service.

No reading is lost and none is stored twice:

- QoS 1 subscription, fixed client id, persistent session (MQTT 5 ``clean_start=False`` with a
  session expiry; MQTT 3.1.1 ``clean_session=False`` if the broker refuses 5): while the service is
  away, the broker queues for it.
- ``manual_ack``: a message is acknowledged only after every record it carried is fsync'd in a
  landing or quarantine file (or recognised as a duplicate of something already durable). A crash
  at any point leaves the message unacknowledged and the broker redelivers it.
- Redeliveries of what was already written are recognised by the dedupe index (loaded from the
  landing files themselves, so it survives restarts) and counted as duplicates.

Threads: paho's network thread runs ``_on_message``, which only parses (``ContractParser``) and
enqueues onto a queue bounded in records (backpressure: the broker holds what we cannot take);
the writer thread batches per (feed, local_date) partition, writes atomic Parquet files, then acks;
the calling thread of ``run()`` supervises (signals, idle exit, status file, reconnect fallback).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ingestion.dedupe import (
    QUARANTINE,
    DedupeIndex,
    Verdict,
    quarantine_digest,
    reading_digests,
)
from ingestion.landing import (
    landing_partition,
    landing_table,
    quarantine_partition,
    quarantine_table,
    remove_stale_temp_files,
    write_table_atomic,
)
from ingestion.metrics import FeedCounters, IngestMetrics, MetricsServer, write_status

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from citypipe.settings import Settings
    from ingestion.contract import ContractParser, ParsedMessage

log = logging.getLogger(__name__)

Protocol = Literal["auto", "5", "3.1.1"]
# MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may have in flight to
# us. Acks wait for a flush, so the window must hold several flushes' worth of messages.
RECEIVE_MAXIMUM = 65535
# A broker that does not speak MQTT 5 may never answer a v5 CONNECT (amqtt): fall back after this.
V5_CONNACK_TIMEOUT_S = 5.0
UNSUPPORTED_PROTOCOL = 132
STATUS_INTERVAL_S = 5.0
LOG_INTERVAL_S = 60.0


@dataclass(slots=True)
class _Item:
    gen: int  # connection generation the message arrived on: acks go only to that connection
    mid: int
    qos: int
    parsed: ParsedMessage
    weight: int  # records, at least 1


class _RecordQueue:
    """FIFO bounded by the number of records it holds (a batch message weighs its readings).

    Wake-ups are rare on purpose: the consumer is woken only when the queue turns non-empty and
    producers only when they wait for room; a wake-up per message costs more than the message.
    """

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self._items: deque[_Item | None] = deque()
        self._records = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._producers_waiting = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: _Item, give_up: threading.Event) -> bool:
        """Block while full; return False (item not queued) once ``give_up`` is set."""
        with self._lock:
            while self._records >= self.max_records and self._items:
                if give_up.is_set():
                    return False
                self._producers_waiting += 1
                self._not_full.wait(0.1)
                self._producers_waiting -= 1
            self._items.append(item)
            self._records += item.weight
            if len(self._items) == 1:
                self._not_empty.notify()
            return True

    def put_sentinel(self) -> None:
        with self._lock:
            self._items.append(None)
            self._not_empty.notify()

    def get_many(self, timeout: float, max_items: int) -> list[_Item | None]:
        with self._lock:
            if not self._items and timeout > 0:
                self._not_empty.wait(timeout)
            out: list[_Item | None] = []
            while self._items and len(out) < max_items:
                item = self._items.popleft()
                out.append(item)
                if item is None:
                    break
                self._records -= item.weight
            if out and self._producers_waiting:
                self._not_full.notify_all()
            return out


class IngestService:
    """Subscribe, land, acknowledge. ``run()`` blocks until ``stop()`` (or idle / signal)."""

    def __init__(
        self,
        settings: Settings,
        *,
        shared: bool = False,
        until_idle_s: float | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        protocol: Protocol = "auto",
        parser: ContractParser | None = None,
        max_queued_records: int | None = None,
        flush_max_messages: int | None = None,
        dedupe_max_entries: int = 8_000_000,
        status_interval_s: float = STATUS_INTERVAL_S,
        log_interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        if settings.mqtt_url is None:
            raise ValueError("no broker: set CITYPIPE_MQTT_URL (e.g. mqtt://citypipe@host:1883)")
        if parser is None:
            from ingestion.contract import ContractParser

            parser = ContractParser.from_settings(settings)
        self.settings = settings
        self.parser = parser
        self.until_idle_s = until_idle_s
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.protocol: Protocol = protocol
        self.topic = f"$share/citypipe/{settings.topic_filter}" if shared else settings.topic_filter
        self.flush_max_records = settings.flush_max_records
        self.flush_max_age_s = settings.flush_max_age_s
        # Acks wait for the flush: flush before the broker's in-flight window fills up.
        self.flush_max_messages = flush_max_messages or min(
            settings.flush_max_records, RECEIVE_MAXIMUM // 2
        )
        self.status_interval_s = status_interval_s
        self.log_interval_s = log_interval_s
        self.status_path = settings.status_dir / "ingest.json"
        self.metrics = IngestMetrics()
        self.index = DedupeIndex.for_dirs(
            settings.landing_dir, settings.quarantine_dir, max_entries=dedupe_max_entries
        )
        self._queue = _RecordQueue(max_queued_records or settings.flush_max_records)
        self._stop = threading.Event()  # stop requested (signal, idle, stop())
        self._stopping = threading.Event()  # callback must no longer take messages
        self._writer_error: BaseException | None = None
        self._conn_lock = threading.Lock()
        self._gen = 0
        self._ever_connected = False
        self._socket_opened_at: float | None = None
        self._fallback = False
        self._last_message = time.monotonic()
        self._client: mqtt.Client | None = None
        self._active_protocol = ""
        url = urlsplit(settings.mqtt_url)
        self._tls = url.scheme in ("mqtts", "ssl", "tls")
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (8883 if self._tls else 1883)
        self._username = url.username or settings.mqtt_username
        if url.password:
            log.warning("password in CITYPIPE_MQTT_URL ignored: use CITYPIPE_MQTT_PASSWORD(_FILE)")

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask ``run()`` to finish: flush, acknowledge, write status, disconnect. Thread-safe."""
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped. 0 = clean exit; 1 = a landing write failed (nothing of it acked)."""
        s = self.settings
        remove_stale_temp_files(s.landing_dir, s.quarantine_dir)
        server = None
        if self.metrics_port is not None:
            server = MetricsServer(self.metrics, self.metrics_port, self.metrics_host).start()
        # First Arrow conversion imports pandas (~2 s): do it before messages wait on it.
        landing_table("air", [])
        writer = threading.Thread(target=self._writer_loop, name="ingest-writer", daemon=True)
        writer.start()
        v5 = self.protocol in ("auto", "5")
        self._client = self._make_client(v5)
        log.info(
            "ingest: %s:%d topic %s client id %s (MQTT %s)",
            self._host,
            self._port,
            self.topic,
            s.client_id,
            "5" if v5 else "3.1.1",
        )
        # The idle clock starts now, with room for an MQTT 5 attempt that a 3.1.1 broker ignores.
        self._last_message = time.monotonic() + (
            V5_CONNACK_TIMEOUT_S if self.protocol == "auto" else 0
        )
        self._connect(self._client, v5)
        next_status = next_log = time.monotonic()
        try:
            while not self._stop.wait(0.2):
                now = time.monotonic()
                if self._writer_error is not None:
                    break
                if self._needs_fallback(v5, now):
                    log.warning("broker does not accept MQTT 5: reconnecting with MQTT 3.1.1")
                    self._client.disconnect()
                    self._client.loop_stop()
                    v5 = False
                    self._client = self._make_client(v5)
                    self._connect(self._client, v5)
                if self.until_idle_s is not None and now - self._last_message >= self.until_idle_s:
                    log.info("ingest: idle for %.1f s, stopping", self.until_idle_s)
                    break
                if now >= next_status:
                    self._write_status()
                    next_status = now + self.status_interval_s
                if now >= next_log:
                    self.metrics.log_summary()
                    next_log = now + self.log_interval_s
        finally:
            self._shutdown(writer)
            if server is not None:
                server.stop()
        if self._writer_error is not None:
            log.error("ingest: stopped after a write failure: %s", self._writer_error)
            return 1
        return 0

    def _shutdown(self, writer: threading.Thread) -> None:
        self._stopping.set()
        self._queue.put_sentinel()
        writer.join()
        client = self._client
        if client is not None:
            # Acks were queued before DISCONNECT: paho writes its out-queue in order.
            client.disconnect()
            client.loop_stop()
        self.metrics.set_connection(False)
        self._write_status()
        self.metrics.log_summary()

    def _write_status(self) -> None:
        self.metrics.messages_pending = len(self._queue)
        try:
            write_status(self.status_path, self.metrics.snapshot())
        except OSError:
            log.exception("could not write status file %s", self.status_path)

    # ------------------------------------------------------------------ MQTT

    def _make_client(self, v5: bool) -> mqtt.Client:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        if v5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=s.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=s.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if self._username:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            client.username_pw_set(self._username, password)
        if self._tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._active_protocol = "5" if v5 else "3.1.1"
        return client

    def _connect(self, client: mqtt.Client, v5: bool) -> None:
        self._socket_opened_at = None
        if v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            client.connect_async(
                self._host, self._port, keepalive=30, clean_start=False, properties=props
            )
        else:
            client.connect_async(self._host, self._port, keepalive=30)
        # loop_start retries the first connection too, with the reconnect backoff.
        client.loop_start()

    def _needs_fallback(self, v5: bool, now: float) -> bool:
        if not v5 or self.protocol != "auto" or self._ever_connected:
            return False
        if self._fallback:
            return True
        opened = self._socket_opened_at
        return opened is not None and now - opened > V5_CONNACK_TIMEOUT_S

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._socket_opened_at = time.monotonic()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value == UNSUPPORTED_PROTOCOL:
                self._fallback = True
            log.error("broker refused connection: %s", reason_code)
            return
        with self._conn_lock:
            self._gen += 1
        self._ever_connected = True
        self._last_message = time.monotonic()  # --until-idle counts from (re)connection too
        self.metrics.set_connection(True, self._active_protocol)
        log.info(
            "connected (MQTT %s, session present: %s)",
            self._active_protocol,
            bool(getattr(flags, "session_present", False)),
        )
        # Subscribing again is harmless when the session kept it, and needed when it did not.
        if self._active_protocol == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            client.subscribe(self.topic, options=SubscribeOptions(qos=1))
        else:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        for rc in reason_codes:
            if rc.is_failure:
                log.error("subscription to %s refused: %s", self.topic, rc)
            else:
                log.info("subscribed to %s (granted QoS %s)", self.topic, rc.value)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._conn_lock:
            # Packet ids are per connection: never ack an old connection's message on a new one.
            self._gen += 1
        self.metrics.set_connection(False)
        if not self._stopping.is_set():
            log.warning("disconnected from broker: %s (reconnecting with backoff)", reason_code)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Parse and enqueue only: everything slow happens in the writer thread.
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        received_at = datetime.now(UTC)
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        parsed = self.parser.parse(topic, msg.payload, received_at)
        item = _Item(self._gen, msg.mid, msg.qos, parsed, max(parsed.records, 1))
        self._last_message = time.monotonic()
        if self._queue.put(item, self._stopping):
            self.metrics.message_received(received_at)

    # ------------------------------------------------------------------ writer

    def _writer_loop(self) -> None:
        pending: list[_Item] = []
        records = 0
        oldest = 0.0
        done = False
        while not done:
            timeout = max(0.0, oldest + self.flush_max_age_s - time.monotonic()) if pending else 0.5
            if pending:
                # Let a batch accumulate instead of waking for every message (and taking the GIL
                # from the network thread that is receiving them).
                time.sleep(min(timeout, 0.02))
                timeout = 0.0
            for item in self._queue.get_many(timeout, max_items=1 << 16):
                if item is None:
                    done = True
                    break
                if not pending:
                    oldest = time.monotonic()
                pending.append(item)
                records += item.weight
            if not pending:
                continue
            if (
                done
                or records >= self.flush_max_records
                or len(pending) >= self.flush_max_messages
                or time.monotonic() - oldest >= self.flush_max_age_s
            ):
                try:
                    self._flush(pending)
                except BaseException as exc:
                    # Nothing of this batch is acknowledged: the broker keeps it for the next run.
                    log.exception("landing write failed; stopping without acknowledging the batch")
                    self._writer_error = exc
                    self._stopping.set()
                    self._stop.set()
                    return
                pending = []
                records = 0

    def _flush(self, pending: list[_Item]) -> None:
        t0 = time.perf_counter()
        s = self.settings
        counts: dict[str, FeedCounters] = defaultdict(FeedCounters)
        readings: dict[tuple[str, date], list[dict[str, object]]] = defaultdict(list)
        rejected: dict[date, list[dict[str, object]]] = defaultdict(list)
        for item in pending:
            for r in item.parsed.readings:
                readings[(r.feed, r.local_date)].append(r.row)
            for j in item.parsed.rejections:
                rejected[j.row["received_date"]].append(j.row)  # type: ignore[index]
        files = 0

        for (feed, day), rows in readings.items():
            digests = [reading_digests(row) for row in rows]
            keys = [d[0] for d in digests]
            pairs = [d[1] for d in digests]
            verdicts = self.index.classify((feed, day), keys, pairs)
            keep = [i for i, v in enumerate(verdicts) if v != Verdict.DUPLICATE]
            c = counts[feed]
            c.received += len(rows)
            c.accepted += len(keep)
            c.duplicates += len(rows) - len(keep)
            c.revisions += sum(1 for v in verdicts if v == Verdict.REVISION)
            if keep:
                table = landing_table(feed, [rows[i] for i in keep])
                write_table_atomic(table, landing_partition(s.landing_dir, feed, day))
                files += 1
                self.index.commit((feed, day), [keys[i] for i in keep], [pairs[i] for i in keep])

        for day, rows in rejected.items():
            digests_q = [quarantine_digest(row) for row in rows]
            verdicts = self.index.classify((QUARANTINE, day), digests_q, digests_q)
            keep = [i for i, v in enumerate(verdicts) if v != Verdict.DUPLICATE]
            kept = set(keep)
            for i, row in enumerate(rows):
                c = counts[str(row["feed"] or "unknown")]
                c.received += 1
                if i in kept:
                    c.quarantined[str(row["reason"])] += 1
                else:
                    c.duplicates += 1
            if keep:
                table = quarantine_table([rows[i] for i in keep])
                write_table_atomic(table, quarantine_partition(s.quarantine_dir, day))
                files += 1
                kept_digests = [digests_q[i] for i in keep]
                self.index.commit((QUARANTINE, day), kept_digests, kept_digests)

        acked = stale = 0
        client = self._client
        with self._conn_lock:
            gen = self._gen
            for item in pending:
                if item.qos == 0:
                    continue
                if item.gen == gen and client is not None:
                    client.ack(item.mid, item.qos)
                    acked += 1
                else:
                    stale += 1  # its connection is gone; the broker redelivers it
        self.metrics.messages_pending = len(self._queue)
        self.metrics.add_flush(
            counts, files=files, acked=acked, stale=stale, seconds=time.perf_counter() - t0
        )


# ---------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="run the durable MQTT ingest service (landing zone + quarantine)",
        description=(
            "Subscribe to city/{city}/+/+ (QoS 1, persistent session) and land readings as "
            "Parquet; acknowledge only after fsync. SIGTERM/SIGINT: flush, ack, exit 0."
        ),
    )
    p.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="exit cleanly after this many seconds without a message (batch runs, demo, tests)",
    )
    p.add_argument(
        "--shared",
        action="store_true",
        help="subscribe to $share/citypipe/... (several instances; give each its own client id)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="bind address for /metrics")
    p.add_argument(
        "--status-interval",
        type=float,
        default=STATUS_INTERVAL_S,
        metavar="SECONDS",
        help=f"rewrite status/ingest.json this often (default {STATUS_INTERVAL_S:g})",
    )
    p.add_argument("--mqtt-url", help="broker URL (default: CITYPIPE_MQTT_URL)")
    p.add_argument("--client-id", help="MQTT client id (default: CITYPIPE_MQTT_CLIENT_ID)")
    p.add_argument(
        "--protocol",
        choices=("auto", "5", "3.1.1"),
        default="auto",
        help="MQTT version; auto tries 5 and falls back to 3.1.1",
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    update: dict[str, object] = {}
    if args.mqtt_url:
        update["mqtt_url"] = args.mqtt_url
    if args.client_id:
        update["mqtt_client_id"] = args.client_id
    if update:
        settings = settings.model_copy(update=update)
    try:
        service = IngestService(
            settings,
            shared=args.shared,
            until_idle_s=args.until_idle,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            protocol=args.protocol,
            status_interval_s=args.status_interval,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2

    def on_signal(signum: int, frame: object) -> None:
        log.info("ingest: %s received, flushing and stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return service.run()
