"""`citypipe alerts`: the long-running alert service.

- Its own persistent MQTT session (``ingestion.session.MqttSession``, the ingest service's
  session code): a fixed client id distinct from ingest's (``CITYPIPE_ALERTS_CLIENT_ID``, default
  ``citypipe-alerts-{city}``), QoS 1, ``clean_start=False`` with a session expiry, subscribed to
  ``city/{city}/+/+``. While the service is down the broker queues the readings for it.
- The MQTT callback only enqueues (bounded queue: when the worker falls behind, the callback
  blocks and TCP pushes back). One worker thread parses each message with the contract parser
  (``ingestion.contract``; what ingest would quarantine is ignored here), runs the rules
  (``alerts.rules.Engine``), writes the changes to the store (``alerts.store``, committed) and
  only then publishes them, retained, QoS 1, under ``city/{city}/alert/{kind}/{site_id}``, and
  acknowledges the messages it evaluated. A clear is an empty retained message.
- On start the open alerts are read back from the store into the rules, and the retained topics
  are republished from the store (an open alert's message, or empty), also after every
  reconnection of the publisher: the broker's retained state always converges to the store's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alerts.rules import Change, Engine, Observation
from alerts.store import AlertStore, store_path
from common.catalogue import load_catalogue
from common.mqtt import make_client, parse_broker_url
from ingestion.contract import ContractParser
from ingestion.metrics import IngestMetrics, write_status
from ingestion.session import MqttSession, Protocol, Ticket

if TYPE_CHECKING:
    from common.settings import Settings

log = logging.getLogger(__name__)

QUEUE_MAX = 10_000  # raw messages waiting for the worker
BATCH_MAX = 500  # messages evaluated per store transaction (a backlog drains in batches)
STATUS_INTERVAL_S = 5.0
KEEPALIVE_S = 30


def default_client_id(settings: Settings) -> str:
    return os.environ.get("CITYPIPE_ALERTS_CLIENT_ID") or f"citypipe-alerts-{settings.city}"


def alert_topic(city: str, kind: str, site_id: str) -> str:
    return f"city/{city}/alert/{kind}/{site_id}"


class AlertService:
    """Subscribe, evaluate, store, publish. ``run()`` blocks until ``stop()`` or a signal."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str | None = None,
        protocol: Protocol = "auto",
        tick_s: float = 1.0,
        status_interval_s: float = STATUS_INTERVAL_S,
    ) -> None:
        if settings.mqtt_url is None:
            raise ValueError("no broker: set CITYPIPE_MQTT_URL (e.g. mqtt://citypipe@host:1883)")
        self.broker = parse_broker_url(settings.mqtt_url)
        if self.broker.password_in_url:
            log.warning("password in CITYPIPE_MQTT_URL ignored: use CITYPIPE_MQTT_PASSWORD(_FILE)")
        self.client_id = client_id or default_client_id(settings)
        if self.client_id == settings.client_id:
            raise ValueError(
                f"alerts client id {self.client_id!r} is the ingest service's: the two sessions "
                "would take each other over (set CITYPIPE_ALERTS_CLIENT_ID)"
            )
        self.settings = settings
        self.city = settings.city
        self.tick_s = tick_s
        self.status_interval_s = status_interval_s
        self.status_path = settings.status_dir / "alerts.json"
        self.parser = ContractParser.from_settings(settings)
        catalogue = load_catalogue(settings.reference_dir, settings.city)
        self.store = AlertStore(store_path(settings.home))
        self.engine = Engine(
            catalogue, settings.reference_dir, now=datetime.now(UTC), timezone=settings.timezone
        )
        restored = self.store.open_alerts()
        checkpoint = self.store.load_checkpoint()
        if checkpoint is None:
            self.engine.restore(restored)
        else:
            self.engine.load_checkpoint(checkpoint, restored)
        log.info(
            "alerts: %d open alert(s) restored from %s (%s)",
            len(restored),
            self.store.path,
            "with the rules' checkpoint" if checkpoint is not None else "no checkpoint",
        )
        self.queue: queue.Queue[tuple[str, bytes, float, Ticket]] = queue.Queue(QUEUE_MAX)
        self._stop = threading.Event()
        self._stopping = threading.Event()
        self._republish = threading.Event()
        self.metrics = IngestMetrics()  # the session reports its connection state here
        self.counts = {"messages": 0, "readings": 0, "ignored_records": 0, "changes": 0}
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.session = MqttSession(
            settings.model_copy(update={"mqtt_client_id": self.client_id}),
            self.broker,
            topic=settings.topic_filter,
            protocol=protocol,
            metrics=self.metrics,
            stopping=self._stopping,
            deliver=self._take,
            on_connected=lambda: None,
        )
        # Publishing goes through a second, plain connection: the session's client is the
        # ingest code's and only subscribes and acknowledges.
        self.publisher = make_client(
            self.broker,
            "3.1.1",
            client_id=f"{self.client_id}-pub",
            username=settings.mqtt_username,
            password=password,
        )
        self.publisher.reconnect_delay_set(min_delay=1, max_delay=60)
        self.publisher.max_queued_messages_set(0)
        self.publisher.on_connect = self._on_publisher_connect

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        log.info(
            "alerts: %s:%d topic %s client id %s, store %s",
            self.broker.host,
            self.broker.port,
            self.settings.topic_filter,
            self.client_id,
            self.store.path,
        )
        self.publisher.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        self.publisher.loop_start()
        self.session.start()
        worker = threading.Thread(target=self._work, name="alerts-worker", daemon=True)
        worker.start()
        next_status = time.monotonic()
        try:
            while not self._stop.wait(0.2):
                now = time.monotonic()
                self.session.fall_back_if_refused(now)
                if not worker.is_alive():
                    log.error("alerts: the worker stopped")
                    return 1
                if now >= next_status:
                    self._write_status()
                    next_status = now + self.status_interval_s
        finally:
            self._stopping.set()
            worker.join(30)
            self.session.close()
            self._flush_publisher()
            self.publisher.disconnect()
            self.publisher.loop_stop()
            self._write_status()
            self.store.close()
        return 0

    def _flush_publisher(self, timeout_s: float = 5.0) -> None:
        # Give queued QoS 1 alert messages a moment to reach the broker before disconnecting
        # (they are in the store either way and republished at the next start).
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.publisher.is_connected():
            if not self.publisher.want_write() and not self._publisher_inflight():
                return
            time.sleep(0.02)

    def _publisher_inflight(self) -> bool:
        return bool(getattr(self.publisher, "_out_messages", None))

    def _write_status(self) -> None:
        status = {
            "updated_at": datetime.now(UTC).isoformat(),
            "client_id": self.client_id,
            "connected": self.metrics.connected,
            "publisher_connected": self.publisher.is_connected(),
            "queue": self.queue.qsize(),
            "open_alerts": len(self.engine.open),
            **self.counts,
        }
        try:
            write_status(self.status_path, status)
        except OSError:
            log.exception("could not write status file %s", self.status_path)

    # ------------------------------------------------------------------ MQTT threads

    def _take(self, topic: str, payload: bytes | bytearray, received_at: float, t: Ticket) -> None:
        # paho's network thread: enqueue only; the worker evaluates.
        if self._stopping.is_set():
            return  # not acked: the broker redelivers it to the next session
        self.queue.put((topic, bytes(payload), received_at, t))

    def _on_publisher_connect(self, client: Any, userdata: Any, *args: Any) -> None:
        self._republish.set()

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            batch: list[tuple[str, bytes, float, Ticket]] = []
            try:
                batch.append(self.queue.get(timeout=self.tick_s / 4))
                while len(batch) < BATCH_MAX:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            if self._republish.is_set():
                self._republish.clear()
                self._republish_all()
            changes: list[Change] = []
            for topic, payload, received_at, _ in batch:
                changes.extend(self._evaluate(topic, payload, received_at))
            if time.monotonic() >= next_tick:
                changes.extend(self.engine.tick(datetime.now(UTC)))
                next_tick = time.monotonic() + self.tick_s
            if changes:
                self.store.write(changes)  # durable before anyone hears of it
                for ch in changes:
                    self._publish(ch)
                self.counts["changes"] += len(changes)
            if batch or changes:
                # The rules' state including this batch is durable before the batch is acked: a
                # crash before the ack redelivers messages the checkpoint has not seen, or that
                # the per-device order check then ignores.
                self.store.save_checkpoint(self.engine.checkpoint())
            if batch:
                self.session.ack(t for *_, t in batch)
                self.counts["messages"] += len(batch)

    def _evaluate(self, topic: str, payload: bytes, received_at: float) -> list[Change]:
        received = datetime.fromtimestamp(received_at, UTC)
        parsed = self.parser.parse(topic, payload, received)
        self.counts["ignored_records"] += len(parsed.rejections)  # ingest quarantines them
        out: list[Change] = []
        for r in parsed.readings:
            row = r.row
            obs = Observation(
                feed=r.feed,
                site_id=str(row["site_id"]),
                device_id=str(row["device_id"]),
                observed_at=row["observed_at"],  # type: ignore[arg-type]
                period_s=int(row["period_s"]),  # type: ignore[call-overload]
                values=row,  # type: ignore[arg-type]
                flags=str(row["flags"]),
                received_at=received,
                lane=row["lane"],  # type: ignore[arg-type]
            )
            self.counts["readings"] += 1
            out.extend(self.engine.observe(obs))
        return out

    def _publish(self, ch: Change) -> None:
        a = ch.alert
        topic = alert_topic(self.city, a.kind, a.site_id)
        body = b"" if ch.action == "clear" else json.dumps(a.payload()).encode()
        log.info("alert %s %s %s level %s value %s", ch.action, a.kind, a.site_id, a.level, a.value)
        self.publisher.publish(topic, body, qos=1, retain=True)

    def _republish_all(self) -> None:
        """The retained topics as the store has them: the open alert, or nothing."""
        n = 0
        for kind, site_id, open_id in self.store.topics():
            alert = self.engine.open.get((kind, site_id))
            topic = alert_topic(self.city, kind, site_id)
            if open_id is not None and alert is not None:
                self.publisher.publish(
                    topic, json.dumps(alert.payload()).encode(), qos=1, retain=True
                )
            else:
                self.publisher.publish(topic, b"", qos=1, retain=True)
            n += 1
        log.info("alerts: republished %d retained alert topic(s) from the store", n)


# ---------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "alerts",
        help="run the near-real-time alert service (waterlogging, AQI, DO, silent, flat-line)",
        description=(
            "Subscribe to city/{city}/+/+ on its own persistent session, evaluate the alert "
            "rules, store alerts in {home}/alerts/alerts.sqlite and publish them retained under "
            "city/{city}/alert/{kind}/{site_id}. SIGTERM/SIGINT: clean stop, exit 0. "
            "--list prints the active and recent alerts from the store and exits."
        ),
    )
    p.add_argument("--mqtt-url", help="broker URL (default: CITYPIPE_MQTT_URL)")
    p.add_argument(
        "--client-id",
        help="MQTT client id (default: CITYPIPE_ALERTS_CLIENT_ID or citypipe-alerts-{city})",
    )
    p.add_argument(
        "--protocol",
        choices=("auto", "5", "3.1.1"),
        default="auto",
        help="MQTT version; auto tries 5 and falls back to 3.1.1",
    )
    p.add_argument(
        "--status-interval",
        type=float,
        default=STATUS_INTERVAL_S,
        metavar="SECONDS",
        help=f"rewrite status/alerts.json this often (default {STATUS_INTERVAL_S:g})",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print active and last-7-days alerts from the store as JSON lines and exit",
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.list:
        return _list(settings)
    if args.mqtt_url:
        settings = settings.model_copy(update={"mqtt_url": args.mqtt_url})
    try:
        service = AlertService(
            settings,
            client_id=args.client_id,
            protocol=args.protocol,
            status_interval_s=args.status_interval,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2

    def on_signal(signum: int, frame: object) -> None:
        log.info("alerts: %s received, stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return service.run()


def _list(settings: Settings) -> int:
    from datetime import timedelta

    from alerts.store import read_recent

    path = store_path(settings.home)
    if not path.exists():
        log.error("no alert store at %s", path)
        return 1
    for a in read_recent(path, datetime.now(UTC) - timedelta(days=7)):
        print(json.dumps(a.payload(), ensure_ascii=False))
    return 0
