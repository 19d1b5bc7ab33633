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

Two processes (``worker="process"``, the default): this one runs paho's network thread, whose
``_on_message`` only appends the raw message (topic, payload, receive time) to a hand-over batch
and its (connection, packet id) to the in-flight FIFO; full batches go to the writer process
(``ingestion.writer``) over a socket pair, which parses, dedupes, writes Parquet and reports how
many of the oldest in-flight messages are now durable; the receiver thread here acks those. Paho's
receive path alone costs as much CPU as parse + write together, so each gets its own core. The
socket pair is the backpressure: when the writer is behind, the hand-over blocks the network
thread, TCP pushes back and the broker keeps the rest queued. ``worker="thread"`` runs the writer
loop in a thread of this process instead (one core). The calling thread of ``run()`` supervises
(signals, idle exit, partial hand-overs, status file, reconnect fallback).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ingestion.metrics import FeedCounters, IngestMetrics, MetricsServer, write_status

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from common.settings import Settings

log = logging.getLogger(__name__)

Protocol = Literal["auto", "5", "3.1.1"]
Worker = Literal["process", "thread"]
# MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may have in flight to
# us. Acks wait for a flush, so the window must hold several flushes' worth of messages.
RECEIVE_MAXIMUM = 65535
# A broker that does not speak MQTT 5 may never answer a v5 CONNECT (amqtt): fall back after this.
V5_CONNACK_TIMEOUT_S = 5.0
UNSUPPORTED_PROTOCOL = 132
# CONNACK codes meaning "who you are was refused": MQTT 5 (134 bad user name or password,
# 135 not authorized) and MQTT 3.1.1 (4, 5), which paho reports with the same numbers or these.
AUTH_REFUSED = frozenset({4, 5, 134, 135})
# Exit status of a batch run (--until-idle) that never reached the broker: cron must see it fail.
EXIT_NEVER_CONNECTED = 3
STATUS_INTERVAL_S = 5.0
LOG_INTERVAL_S = 60.0
# Hand-over batches to the writer: big enough that pickling and the socket cost ~1 us a message,
# small enough (and at most HANDOFF_MAX_AGE_S old) not to add to the flush latency.
HANDOFF_MESSAGES = 1000
HANDOFF_BYTES = 1 << 20
HANDOFF_MAX_AGE_S = 0.05
# Not ``-m ingestion.writer``: that would import the module twice (as __main__ and by unpickling).
WRITER_MAIN = "import sys; from ingestion.writer import main; sys.exit(main(sys.argv[1:]))"


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
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.protocol: Protocol = protocol
        self.worker: Worker = worker
        self.topic = f"$share/citypipe/{settings.topic_filter}" if shared else settings.topic_filter
        self.flush_max_records = settings.flush_max_records
        self.flush_max_age_s = settings.flush_max_age_s
        # Acks wait for the flush: flush before the broker's in-flight window fills up.
        self.flush_max_messages = flush_max_messages or min(
            settings.flush_max_records, RECEIVE_MAXIMUM // 2
        )
        self.dedupe_max_entries = dedupe_max_entries
        self.status_interval_s = status_interval_s
        self.log_interval_s = log_interval_s
        self.status_path = settings.status_dir / "ingest.json"
        self.metrics = IngestMetrics()
        self._stop = threading.Event()  # stop requested (signal, idle, stop())
        self._stopping = threading.Event()  # callback must no longer take messages
        self._ready = threading.Event()  # the writer holds its lock and is warm
        self._writer_error: str | None = None
        self._writer_done = False
        self._conn_lock = threading.Lock()
        self._gen = 0
        # Hand-over state, guarded by _handoff_lock (which is also held while sending, so
        # batches reach the writer in arrival order).
        self._handoff_lock = threading.Lock()
        self._batch: list[tuple[str, bytes, float]] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        # (connection generation, packet id, qos) of every handed-over message not yet durable,
        # in arrival order. Appended by the network thread, popped by the receiver thread
        # (deque append/popleft are atomic).
        self._inflight: deque[tuple[int, int, int]] = deque()
        self._pipe: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer_thread: threading.Thread | None = None
        self._ever_connected = False
        self._connected = False  # this connection got a successful CONNACK
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
        """Serve until stopped. 0 = clean exit; 1 = a landing write failed or the writer died
        (nothing of what was not durable was acked); 3 = a batch run (``until_idle_s``) ended
        without ever connecting to the broker."""
        s = self.settings
        server = None
        if self.metrics_port is not None:
            server = MetricsServer(self.metrics, self.metrics_port, self.metrics_host).start()
        receiver = self._start_writer()
        try:
            # Connect only once the writer holds the client id's lock: a previous writer of ours
            # might still be finishing a file, and its session must not be taken over meanwhile.
            while not self._ready.wait(0.2):
                if self._stop.is_set() or self._writer_error is not None:
                    break
            if self._ready.is_set() and not self._stop.is_set():
                self._serve(s)
        finally:
            self._shutdown(receiver)
            if server is not None:
                server.stop()
        if self._writer_error is not None:
            log.error("ingest: stopped after a writer failure: %s", self._writer_error)
            return 1
        if self.until_idle_s is not None and not self._ever_connected:
            log.error(
                "ingest: never connected to %s: nothing was received (exit %d)",
                self.broker_label,
                EXIT_NEVER_CONNECTED,
            )
            return EXIT_NEVER_CONNECTED
        return 0

    @property
    def broker_label(self) -> str:
        """Broker and user for log lines; never the password."""
        user = f"{self._username}@" if self._username else ""
        return f"{user}{self._host}:{self._port}"

    def _serve(self, s: Settings) -> None:
        v5 = self.protocol in ("auto", "5")
        self._client = self._make_client(v5)
        log.info(
            "ingest: %s:%d topic %s client id %s (MQTT %s, writer %s)",
            self._host,
            self._port,
            self.topic,
            s.client_id,
            "5" if v5 else "3.1.1",
            self.worker,
        )
        # The idle clock starts now, with room for an MQTT 5 attempt that a 3.1.1 broker ignores.
        self._last_message = time.monotonic() + (
            V5_CONNACK_TIMEOUT_S if self.protocol == "auto" else 0
        )
        self._connect(self._client, v5)
        next_status = next_log = time.monotonic()
        while not self._stop.wait(HANDOFF_MAX_AGE_S):
            now = time.monotonic()
            if self._writer_error is not None:
                break
            if self._batch and now - self._batch_started >= HANDOFF_MAX_AGE_S:
                with self._handoff_lock:
                    if self._batch and not self._stopping.is_set():
                        self._handoff_locked()
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

    def _shutdown(self, receiver: threading.Thread) -> None:
        with self._handoff_lock:
            # From here the callback takes nothing: what arrives now stays unacknowledged.
            self._stopping.set()
            if self._batch and self._writer_error is None:
                self._handoff_locked()
            self._send(("stop",))
        receiver.join()  # the writer's last flush is acked (or it failed/died)
        client = self._client
        if client is not None:
            # Acks were queued before DISCONNECT: paho writes its out-queue in order.
            client.disconnect()
            client.loop_stop()
        self._stop_writer()
        self.metrics.set_connection(False)
        self._write_status()
        self.metrics.log_summary()

    def _write_status(self) -> None:
        # _inflight already holds the messages of the hand-over batch (appended together).
        self.metrics.messages_pending = len(self._inflight)
        try:
            write_status(self.status_path, self.metrics.snapshot())
        except OSError:
            log.exception("could not write status file %s", self.status_path)

    # ------------------------------------------------------------------ writer link

    def _start_writer(self) -> threading.Thread:
        from ingestion.writer import WriterConfig

        config = WriterConfig(
            settings=self.settings,
            flush_max_records=self.flush_max_records,
            flush_max_messages=self.flush_max_messages,
            flush_max_age_s=self.flush_max_age_s,
            dedupe_max_entries=self.dedupe_max_entries,
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        ours, theirs = socket.socketpair()
        if self.worker == "process":
            import ingestion

            root = str(Path(ingestion.__file__).resolve().parent.parent)
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
            fd = theirs.fileno()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", WRITER_MAIN, str(fd), str(os.getpid())],
                pass_fds=(fd,),
                env=env,
                stdin=subprocess.DEVNULL,
            )
            theirs.close()  # else the writer would never see end-of-file when we die
            self._pipe = Connection(ours.detach())
            self._pipe.send(("config", config))
        else:
            from ingestion.writer import serve

            self._pipe = Connection(ours.detach())
            wconn = Connection(theirs.detach())

            def run_writer() -> None:
                try:
                    serve(wconn, config)
                finally:
                    wconn.close()

            self._writer_thread = threading.Thread(
                target=run_writer, name="ingest-writer", daemon=True
            )
            self._writer_thread.start()
        receiver = threading.Thread(target=self._receiver_loop, name="ingest-acks", daemon=True)
        receiver.start()
        return receiver

    def _stop_writer(self) -> None:
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.error("writer process %d did not exit: killing it", self._proc.pid)
                self._proc.kill()
                code = self._proc.wait()
            if code != 0 and self._writer_error is None:
                self._writer_error = f"writer process exited with {code}"
        if self._writer_thread is not None:
            self._writer_thread.join(timeout=30)
        if self._pipe is not None:
            self._pipe.close()

    def _fail(self, reason: str) -> None:
        if self._writer_error is None:
            self._writer_error = reason
        self._stopping.set()
        self._stop.set()

    def _send(self, msg: tuple[Any, ...]) -> None:
        """Send to the writer; caller holds ``_handoff_lock``. Blocks while the writer is behind."""
        if self._pipe is None or self._writer_error is not None:
            return
        try:
            self._pipe.send(msg)
        except (OSError, ValueError) as exc:
            self._fail(f"writer unreachable: {exc}")

    def _handoff_locked(self) -> None:
        batch = self._batch
        self._batch = []
        self._batch_bytes = 0
        self.metrics.messages_received_add(
            len(batch),
            datetime.fromtimestamp(batch[0][2], UTC),
            datetime.fromtimestamp(batch[-1][2], UTC),
        )
        self._send(("msgs", batch))

    def _receiver_loop(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        while True:
            try:
                msg = pipe.recv()
            except (EOFError, OSError):
                if not self._writer_done:
                    code = self._proc.poll() if self._proc is not None else None
                    self._fail(
                        f"writer died (exit code {code}); nothing after its last flush acked"
                    )
                return
            kind = msg[0]
            if kind == "durable":
                self._acknowledge(*msg[1:])
            elif kind == "ready":
                self._ready.set()
            elif kind == "error":
                self._fail(f"landing write failed: {msg[1]}")
                return
            elif kind == "bye":
                self._writer_done = True
                return

    def _acknowledge(
        self, n: int, counts: dict[str, FeedCounters], files: int, seconds: float
    ) -> None:
        done = [self._inflight.popleft() for _ in range(n)]
        acked = stale = 0
        client = self._client
        with self._conn_lock:
            gen = self._gen
            for g, mid, qos in done:
                if qos == 0:
                    continue
                if g == gen and client is not None:
                    client.ack(mid, qos)
                    acked += 1
                else:
                    stale += 1  # its connection is gone; the broker redelivers it
        self.metrics.messages_pending = len(self._inflight)
        self.metrics.add_flush(counts, files=files, acked=acked, stale=stale, seconds=seconds)

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
        client.on_connect_fail = self._on_connect_fail
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

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around the TCP/TLS connect: the
        # exception being handled is the reason.
        log.warning(
            "cannot connect to broker %s: %s (retrying with backoff)",
            self.broker_label,
            socket_failure_reason(sys.exc_info()[1]),
        )

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value == UNSUPPORTED_PROTOCOL:
                self._fallback = True
            log.warning(
                "broker %s refused the connection: %s (retrying with backoff)",
                self.broker_label,
                connack_failure_reason(reason_code.value, str(reason_code)),
            )
            return
        with self._conn_lock:
            self._gen += 1
        self._ever_connected = self._connected = True
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
        was_connected, self._connected = self._connected, False
        # After a refused CONNECT the refusal was already logged with its reason.
        if was_connected and not self._stopping.is_set():
            log.warning("disconnected from broker: %s (reconnecting with backoff)", reason_code)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Enqueue the raw message only: parsing and writing happen in the writer (process).
        received_at = time.time()
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        payload = msg.payload
        with self._handoff_lock:
            if self._stopping.is_set():
                return  # not acknowledged: the broker redelivers it to the next session
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append((topic, payload, received_at))
            self._inflight.append((self._gen, msg.mid, msg.qos))
            self._batch_bytes += len(payload)
            if len(self._batch) >= HANDOFF_MESSAGES or self._batch_bytes >= HANDOFF_BYTES:
                self._handoff_locked()  # blocks while the writer is behind: backpressure
        self._last_message = time.monotonic()


def socket_failure_reason(exc: BaseException | None) -> str:
    """Why a TCP/TLS connection attempt failed, in words an operator acts on."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listening on that host and port?)"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "timed out (host unreachable or filtered?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({getattr(exc, 'reason', None) or exc})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return "unknown network error" if exc is None else str(exc)


def connack_failure_reason(code: int, text: str) -> str:
    """Why the broker answered CONNECT with a failure (paho's text plus what it means)."""
    if code in AUTH_REFUSED:
        return f"not authorised: {text} (check the user name and CITYPIPE_MQTT_PASSWORD(_FILE))"
    return f"{text} (CONNACK code {code})"


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
