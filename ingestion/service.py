"""`citypipe ingest`: the durable MQTT ingest service.

No reading is lost and none is stored twice:

- QoS 1 subscription, fixed client id, persistent session (``ingestion.session``): while the
  service is away, the broker queues for it.
- ``manual_ack``: a message is acknowledged only after every record it carried is fsync'd in a
  landing or quarantine file (or recognised as a duplicate of something already durable). A crash
  at any point leaves the message unacknowledged and the broker redelivers it.
- Redeliveries of what was already written are recognised by the dedupe index (loaded from the
  landing files themselves, so it survives restarts) and counted as duplicates.

``IngestService`` composes two parts and supervises them:

- ``MqttSession`` (``ingestion.session``): paho's network thread; its message callback only
  enqueues the raw message (topic, payload, receive time) with its ticket;
- ``WriterLink`` (``ingestion.writer_link``): hands batches to the writer (``ingestion.writer``:
  parse, dedupe, Parquet, in a second process by default, or a thread with ``worker="thread"``)
  and reports which of the oldest messages are durable; the service then has the session ack them.

Paho's receive path alone costs as much CPU as parse + write together, so each gets its own core.
The calling thread of ``run()`` supervises: signals, idle exit, partial hand-overs, status file,
the protocol fallback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

from common.mqtt import parse_broker_url
from ingestion.messages import Durable, WriterConfig
from ingestion.metrics import IngestMetrics, MetricsServer, write_status
from ingestion.session import (
    RECEIVE_MAXIMUM,
    V5_CONNACK_TIMEOUT_S,
    MqttSession,
    Protocol,
    Ticket,
)
from ingestion.writer_link import HANDOFF_MAX_AGE_S, Worker, WriterLink

if TYPE_CHECKING:
    from common.settings import Settings

log = logging.getLogger(__name__)

# Exit status of a batch run (--until-idle) that never reached the broker: cron must see it fail.
EXIT_NEVER_CONNECTED = 3
STATUS_INTERVAL_S = 5.0
LOG_INTERVAL_S = 60.0


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
        worker: Worker = "process",
        flush_max_messages: int | None = None,
        dedupe_max_entries: int = 8_000_000,
        status_interval_s: float = STATUS_INTERVAL_S,
        log_interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        if settings.mqtt_url is None:
            raise ValueError("no broker: set CITYPIPE_MQTT_URL (e.g. mqtt://citypipe@host:1883)")
        broker = parse_broker_url(settings.mqtt_url)
        if broker.password_in_url:
            log.warning("password in CITYPIPE_MQTT_URL ignored: use CITYPIPE_MQTT_PASSWORD(_FILE)")
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.protocol: Protocol = protocol
        self.worker: Worker = worker
        self.topic = f"$share/citypipe/{settings.topic_filter}" if shared else settings.topic_filter
        self.status_interval_s = status_interval_s
        self.log_interval_s = log_interval_s
        self.status_path = settings.status_dir / "ingest.json"
        self.metrics = IngestMetrics()
        self._stop = threading.Event()  # stop requested (signal, idle, stop(), writer failure)
        self._stopping = threading.Event()  # the session's messages are no longer taken
        self._last_message = time.monotonic()
        config = WriterConfig(
            settings=settings,
            flush_max_records=settings.flush_max_records,
            # Acks wait for the flush: flush before the broker's in-flight window fills up.
            flush_max_messages=flush_max_messages
            or min(settings.flush_max_records, RECEIVE_MAXIMUM // 2),
            flush_max_age_s=settings.flush_max_age_s,
            dedupe_max_entries=dedupe_max_entries,
        )
        self.link = WriterLink(
            config,
            worker,
            self.metrics,
            stopping=self._stopping,
            on_durable=self._acknowledge,
            on_failure=self._on_writer_failure,
        )
        self.session = MqttSession(
            settings,
            broker,
            topic=self.topic,
            protocol=protocol,
            metrics=self.metrics,
            stopping=self._stopping,
            deliver=self._take,
            on_connected=self._touch,
        )

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask ``run()`` to finish: flush, acknowledge, write status, disconnect. Thread-safe."""
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped. 0 = clean exit; 1 = a landing write failed or the writer died
        (nothing of what was not durable was acked); 3 = a batch run (``until_idle_s``) ended
        without ever connecting to the broker."""
        server = None
        if self.metrics_port is not None:
            server = MetricsServer(self.metrics, self.metrics_port, self.metrics_host).start()
        # The writer logs at the level in force when the service starts.
        self.link.config.log_level = logging.getLogger().getEffectiveLevel()
        self.link.start()
        try:
            # Connect only once the writer holds the client id's lock: a previous writer of ours
            # might still be finishing a file, and its session must not be taken over meanwhile.
            while not self.link.ready.wait(0.2):
                if self._stop.is_set() or self.link.error is not None:
                    break
            if self.link.ready.is_set() and not self._stop.is_set():
                self._serve()
        finally:
            self._shutdown()
            if server is not None:
                server.stop()
        if self.link.error is not None:
            log.error("ingest: stopped after a writer failure: %s", self.link.error)
            return 1
        if self.until_idle_s is not None and not self.session.ever_connected:
            log.error(
                "ingest: never connected to %s: nothing was received (exit %d)",
                self.session.label,
                EXIT_NEVER_CONNECTED,
            )
            return EXIT_NEVER_CONNECTED
        return 0

    def _serve(self) -> None:
        log.info(
            "ingest: %s:%d topic %s client id %s (MQTT %s, writer %s)",
            self.session.broker.host,
            self.session.broker.port,
            self.topic,
            self.settings.client_id,
            self.session.version,
            self.worker,
        )
        # The idle clock starts now, with room for an MQTT 5 attempt that a 3.1.1 broker ignores.
        self._last_message = time.monotonic() + (
            V5_CONNACK_TIMEOUT_S if self.protocol == "auto" else 0
        )
        self.session.start()
        next_status = next_log = time.monotonic()
        while not self._stop.wait(HANDOFF_MAX_AGE_S):
            now = time.monotonic()
            if self.link.error is not None:
                break
            self.link.hand_over_if_old(now)
            self.session.fall_back_if_refused(now)
            if self.until_idle_s is not None and now - self._last_message >= self.until_idle_s:
                log.info("ingest: idle for %.1f s, stopping", self.until_idle_s)
                break
            if now >= next_status:
                self._write_status()
                next_status = now + self.status_interval_s
            if now >= next_log:
                self.metrics.log_summary()
                next_log = now + self.log_interval_s

    def _shutdown(self) -> None:
        self.link.finish()  # the writer's last flush is acked (or it failed/died)
        self.session.close()
        self.link.close()
        self.metrics.set_connection(False)
        self._write_status()
        self.metrics.log_summary()

    def _write_status(self) -> None:
        self.metrics.messages_pending = self.link.pending
        try:
            write_status(self.status_path, self.metrics.snapshot())
        except OSError:
            log.exception("could not write status file %s", self.status_path)

    # ------------------------------------------------------------------ the two parts meet

    def _take(
        self, topic: str, payload: bytes | bytearray, received_at: float, ticket: Ticket
    ) -> None:
        # paho's network thread: enqueue only (parsing and writing happen in the writer).
        if self.link.put(topic, payload, received_at, ticket):
            self._last_message = time.monotonic()

    def _touch(self) -> None:
        self._last_message = time.monotonic()  # --until-idle counts from (re)connection too

    def _acknowledge(self, tickets: list[Ticket], report: Durable) -> None:
        acked, stale = self.session.ack(tickets)
        self.metrics.messages_pending = self.link.pending
        self.metrics.add_flush(
            report.counts, files=report.files, acked=acked, stale=stale, seconds=report.seconds
        )

    def _on_writer_failure(self) -> None:
        self._stopping.set()
        self._stop.set()


# ---------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument(
        "--writer",
        choices=("process", "thread"),
        default="process",
        help="parse and write in a separate process (default: uses a second core) or a thread",
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
            worker=args.writer,
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
