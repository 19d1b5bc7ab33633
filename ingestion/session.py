"""The ingest service's MQTT session: connect, subscribe, fall back from MQTT 5 to 3.1.1, acknowledge.

QoS 1 subscription, fixed client id, persistent session (MQTT 5 ``clean_start=False`` with a
session expiry; MQTT 3.1.1 ``clean_session=False`` if the broker refuses 5): while the service is
away, the broker queues for it. ``manual_ack``: a message is acknowledged only when the service
says so (``ack``), after the writer made it durable.

paho's network thread runs the callbacks below; they only log, count connections and hand each
message to ``deliver`` (which enqueues it). Each message travels with its ``Ticket``, what
acknowledging it takes: packet ids are per connection, so a ticket of a connection that has since
gone is never acked on the next one (the broker redelivers that message instead).
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from common.mqtt import BrokerAddress, ProtocolVersion, make_client, session_connect_args

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from common.settings import Settings
    from ingestion.metrics import IngestMetrics

log = logging.getLogger(__name__)

Protocol = Literal["auto", "5", "3.1.1"]
# (connection generation, packet id, QoS) of one received message.
Ticket = tuple[int, int, int]
# MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may have in flight to
# us. Acks wait for a flush, so the window must hold several flushes' worth of messages.
RECEIVE_MAXIMUM = 65535
# A broker that does not speak MQTT 5 may never answer a v5 CONNECT (amqtt): fall back after this.
V5_CONNACK_TIMEOUT_S = 5.0
UNSUPPORTED_PROTOCOL = 132
# CONNACK codes meaning "who you are was refused": MQTT 5 (134 bad user name or password,
# 135 not authorized) and MQTT 3.1.1 (4, 5), which paho reports with the same numbers or these.
AUTH_REFUSED = frozenset({4, 5, 134, 135})
KEEPALIVE_S = 30
# Reconnect backoff: 1 s, doubling, at most this. The service never gives up (the daemon waits for
# its broker however long it is away); the cap bounds how long after the broker is back the queue
# starts draining again. One attempt per 10 s costs a broker nothing; the former 60 s cap left the
# ingest away for 16 s after a 15 s outage (tests/reliability/test_rel_ingest_faults.py).
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 10


class MqttSession:
    """One client id's session with the broker, across reconnects and the protocol fallback."""

    def __init__(
        self,
        settings: Settings,
        broker: BrokerAddress,
        *,
        topic: str,
        protocol: Protocol,
        metrics: IngestMetrics,
        stopping: threading.Event,
        deliver: Callable[[str, bytes | bytearray, float, Ticket], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.topic = topic
        self.protocol: Protocol = protocol
        self.username = broker.username or settings.mqtt_username
        self.version: ProtocolVersion = "3.1.1" if protocol == "3.1.1" else "5"
        self.ever_connected = False
        self._metrics = metrics
        self._stopping = stopping  # set: the service is shutting down (no disconnect warning)
        self._deliver = deliver
        self._on_connected = on_connected
        self._client: mqtt.Client | None = None
        # _gen counts connections and disconnections; _conn_lock orders it against acks.
        self._conn_lock = threading.Lock()
        self._gen = 0
        self._connected = False  # this connection got a successful CONNACK
        self._socket_opened_at: float | None = None
        self._fallback = False  # the broker answered MQTT 5 with "unsupported protocol version"

    @property
    def label(self) -> str:
        """Broker and user for log lines; never the password."""
        return self.broker.label(self.username)

    def start(self) -> None:
        """Connect in the background (paho's thread retries with backoff until it succeeds)."""
        s = self.settings
        password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
        client = make_client(
            self.broker,
            self.version,
            client_id=s.client_id,
            persistent=True,
            manual_ack=True,
            username=self.username,
            password=password,
        )
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
        client.on_socket_open = self._on_socket_open
        client.on_connect_fail = self._on_connect_fail
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._socket_opened_at = None
        args = session_connect_args(
            self.version, session_expiry_s=s.mqtt_session_expiry_s, receive_maximum=RECEIVE_MAXIMUM
        )
        client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S, **args)
        # loop_start retries the first connection too, with the reconnect backoff.
        client.loop_start()

    def fall_back_if_refused(self, now: float) -> None:
        """With ``protocol="auto"``: reconnect with MQTT 3.1.1 if the broker would not speak 5."""
        if not self._needs_fallback(now):
            return
        log.warning("broker does not accept MQTT 5: reconnecting with MQTT 3.1.1")
        self.close()
        self.version = "3.1.1"
        self.start()

    def ack(self, tickets: Iterable[Ticket]) -> tuple[int, int]:
        """Acknowledge durable messages; returns (acked, stale: their connection is gone)."""
        acked = stale = 0
        client = self._client
        with self._conn_lock:
            gen = self._gen
            for g, mid, qos in tickets:
                if qos == 0:
                    continue
                if g == gen and client is not None:
                    client.ack(mid, qos)
                    acked += 1
                else:
                    stale += 1  # its connection is gone; the broker redelivers it
        return acked, stale

    def close(self) -> None:
        """Disconnect (acks queued before are written first: paho sends its queue in order)."""
        client = self._client
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _needs_fallback(self, now: float) -> bool:
        if self.version != "5" or self.protocol != "auto" or self.ever_connected:
            return False
        if self._fallback:
            return True
        opened = self._socket_opened_at
        return opened is not None and now - opened > V5_CONNACK_TIMEOUT_S

    # ------------------------------------------------------------------ paho callbacks

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._socket_opened_at = time.monotonic()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around the TCP/TLS connect: the
        # exception being handled is the reason.
        log.warning(
            "cannot connect to broker %s: %s (retrying with backoff)",
            self.label,
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
                self.label,
                connack_failure_reason(reason_code.value, str(reason_code)),
            )
            return
        with self._conn_lock:
            self._gen += 1
        self.ever_connected = self._connected = True
        self._on_connected()
        self._metrics.set_connection(True, self.version)
        log.info(
            "connected (MQTT %s, session present: %s)",
            self.version,
            bool(getattr(flags, "session_present", False)),
        )
        # Subscribing again is harmless when the session kept it, and needed when it did not.
        # MQTT 5: retained messages only with a new subscription. The session already queued
        # every message published while we were away, so re-sending the retained ones on each
        # reconnect only re-fed them as duplicates (3.1.1 has no such option: they are counted
        # as duplicates there).
        if self.version == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            client.subscribe(
                self.topic,
                options=SubscribeOptions(
                    qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                ),
            )
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
        self._metrics.set_connection(False)
        was_connected, self._connected = self._connected, False
        # After a refused CONNECT the refusal was already logged with its reason.
        if was_connected and not self._stopping.is_set():
            log.warning("disconnected from broker: %s (reconnecting with backoff)", reason_code)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Enqueue the raw message only: parsing and writing happen in the writer.
        received_at = time.time()
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        self._deliver(topic, msg.payload, received_at, (self._gen, msg.mid, msg.qos))


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
