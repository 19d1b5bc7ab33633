"""MQTT publication of the KPI pack: the newest day of every KPI and dimension, retained.

After each KPI run (the ``publish_pack`` step of ``citypipe_daily_kpis``, ``steps/kpis.py``)
the pack goes out under ``city/{city}/kpi/{kpi_id}/{dimension}``, QoS 1, retained, so a client
that connects late still gets the latest value of each KPI at once. One message per
(kpi_id, dimension): its newest day's row of ``kpi.pack_values`` as JSON, with the keys of
``citypipe kpis --format json`` (``transforms.published.KPI_KEYS``) plus ``local_date``.

The broker's retained state converges to the warehouse, so a run is idempotent and a failed
one is repaired by the next:

1. the messages are built from the warehouse first (read-only);
2. the publisher connects (``common.mqtt``: broker URL, user and password from settings, the
   fixed client id ``citypipe-kpis-{city}``, a clean session: nothing is queued for it; MQTT 5,
   whose PUBACK says when the broker refused a message, 3.1.1 when the broker only speaks that)
   and reads what the broker retains under ``city/{city}/kpi/+/+``;
3. it publishes each message whose retained payload differs (a rerun sends nothing new, so
   live subscribers see no duplicates), and clears with an empty retained message each topic
   whose (kpi_id, dimension) the pack no longer has on any day;
4. it waits for every PUBACK; one missing or refused (an ACL) is an error (the step fails,
   Airflow retries, and the next run republishes whatever the broker still lacks).

An account allowed to write but not to read ``city/{city}/kpi/#`` still publishes (Mosquitto
then grants the subscription and delivers nothing): every message is sent each time, and
rows that left the pack are not cleared. Grant it ``readwrite``.

An empty pack (no KPI run yet, or a warehouse that is not the one the broker was fed from)
publishes and clears nothing. Topic segments come from data, so each must be an id
(``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 80 characters): no ``+``, ``#``, ``/`` or ``$``; a row
whose id is not is left out and named in the report (and the log), never published under a
wrong topic. Each attempt, success or failure, is written to ``{home}/status/kpi_publish.json``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common.mqtt import ProtocolVersion, make_client, parse_broker_url
from common.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

# A topic segment taken from data (kpi id, dimension, city): an id, never a wildcard, a level
# separator or a leading '$' (reserved for broker topics).
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}")
# The payload keys, in order: `citypipe kpis --format json`'s, then the day.
PAYLOAD_KEYS = (
    "kpi_id",
    "dimension",
    "local_date",
    "value",
    "value_text",
    "unit",
    "target",
    "status",
    "coverage_pct",
    "details",
    "computed_at",
)
QOS = 1
KEEPALIVE_S = 30
# A broker that does not speak MQTT 5 may not answer it at all: then 3.1.1 after this long.
V5_CONNACK_S = 5.0
# After the SUBACK the broker sends the retained messages at once; this much silence ends them.
RETAINED_QUIET_S = 0.5


class PublishError(RuntimeError):
    """The pack could not be (fully) published: no broker, refused, or a PUBACK missing."""


class InvalidTopic(ValueError):
    """A topic segment from data is not an id (it would be a wildcard, a level or reserved)."""


@dataclass
class PublishReport:
    """What one publication did (also the status file's content)."""

    broker: str | None
    client_id: str | None
    topics: int = 0  # messages the pack has now (one per kpi_id and dimension)
    published: int = 0  # sent because the broker's retained payload differed or was missing
    unchanged: int = 0  # the broker already retained exactly this payload
    cleared: int = 0  # retained topics emptied: their kpi_id/dimension left the pack
    invalid: list[str] = field(default_factory=list)  # rows left out: not an id
    newest_day: str | None = None
    skipped: str | None = None  # why nothing was attempted (no broker configured, empty pack)
    degraded: str | None = None  # published, but without reading the broker's state first
    seconds: float = 0.0


def client_id_for(settings: Settings) -> str:
    """The publisher's fixed client id: one per city, distinct from ingest's and alerts'."""
    return f"citypipe-kpis-{settings.city}"


def status_path(settings: Settings) -> Path:
    return settings.status_dir / "kpi_publish.json"


def kpi_topic(city: str, kpi_id: str, dimension: str) -> str:
    """``city/{city}/kpi/{kpi_id}/{dimension}``; :class:`InvalidTopic` when a segment is not an id."""
    for what, seg in (("city", city), ("kpi_id", kpi_id), ("dimension", dimension)):
        if not isinstance(seg, str) or not SEGMENT.fullmatch(seg):
            raise InvalidTopic(f"{what} {seg!r} is not a topic segment ({SEGMENT.pattern})")
    return f"city/{city}/kpi/{kpi_id}/{dimension}"


def topic_filter(city: str) -> str:
    return f"city/{city}/kpi/+/+"


def _finite(x: Any) -> Any:
    # JSON has no NaN/Infinity: a non-finite number is published as null.
    return None if isinstance(x, float) and not math.isfinite(x) else x


def encode(item: dict[str, Any]) -> bytes:
    """One message's payload: compact JSON in ``PAYLOAD_KEYS`` order (byte-identical for the
    same row, which is what makes a republication a no-op)."""
    doc = {k: _finite(item.get(k)) for k in PAYLOAD_KEYS}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def latest_items(settings: Settings) -> list[dict[str, Any]]:
    """The newest day's pack row of every (kpi_id, dimension), JSON-ready (read-only)."""
    from transforms import SQL, scalar
    from transforms.published import pack_items
    from warehouse.db import reader

    with reader(settings) as con:
        if not scalar(con, "queries/count_tables.sql", {"schema": "kpi", "table": "pack_values"}):
            return []
        rows = SQL.run(con, "queries/select_latest_pack.sql").fetchall()
    items = pack_items([r[:-1] for r in rows])
    for item, row in zip(items, rows, strict=True):
        item["local_date"] = row[-1].isoformat()
    return items


def build_messages(city: str, items: list[dict[str, Any]]) -> tuple[dict[str, bytes], list[str]]:
    """Topic -> payload for the items, and the rows left out (not a valid topic)."""
    out: dict[str, bytes] = {}
    invalid: list[str] = []
    for item in items:
        try:
            topic = kpi_topic(city, item["kpi_id"], item["dimension"])
        except InvalidTopic as exc:
            invalid.append(str(exc))
            continue
        out[topic] = encode(item)
    return out, invalid


def publish_latest(
    settings: Settings, *, client_id: str | None = None, timeout_s: float = 30.0
) -> PublishReport:
    """Publish the newest pack values retained (module docstring); the report is also written
    to the status file. Raises :class:`PublishError` (status written first) when it failed."""
    t0 = time.monotonic()
    report = PublishReport(broker=None, client_id=client_id or client_id_for(settings))
    try:
        _publish(settings, report, timeout_s)
    except Exception as exc:
        report.seconds = round(time.monotonic() - t0, 3)
        _write_status(settings, report, error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"KPI pack not published: {type(exc).__name__}: {exc}") from exc
    report.seconds = round(time.monotonic() - t0, 3)
    _write_status(settings, report, error=None)
    return report


def _publish(settings: Settings, report: PublishReport, timeout_s: float) -> None:
    if settings.mqtt_url is None:
        report.skipped = "no broker configured (CITYPIPE_MQTT_URL): the pack is not published"
        log.warning("%s", report.skipped)
        return
    broker = parse_broker_url(settings.mqtt_url)
    if broker.password_in_url:
        log.warning("password in CITYPIPE_MQTT_URL ignored: use CITYPIPE_MQTT_PASSWORD(_FILE)")
    report.broker = broker.label(settings.mqtt_username)
    if report.client_id in (settings.client_id, f"citypipe-alerts-{settings.city}"):
        raise PublishError(f"client id {report.client_id!r} is another service's session")
    items = latest_items(settings)
    messages, report.invalid = build_messages(settings.city, items)
    for why in report.invalid:
        log.error("KPI row not published: %s", why)
    report.topics = len(messages)
    report.newest_day = max((i["local_date"] for i in items), default=None)
    if not items:
        report.skipped = "the KPI pack is empty: nothing published, nothing cleared"
        log.warning("%s", report.skipped)
        return
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    deadline = time.monotonic() + timeout_s
    session = _open_session(
        broker, report.client_id or "", settings.mqtt_username, password, deadline
    )
    try:
        retained = session.read_retained(topic_filter(settings.city), deadline)
        if retained is None:
            # Without read access the broker's state is unknown: everything is sent (the
            # retained state is still the same after a rerun), and nothing can be cleared.
            report.degraded = (
                f"the broker refused to let {report.client_id} read {topic_filter(settings.city)}"
                " (its ACL grants write only; grant readwrite): every message sent, rows that"
                " left the pack not cleared"
            )
            log.warning("%s", report.degraded)
        pending = []
        for topic, payload in messages.items():
            if retained is not None and retained.get(topic) == payload:
                report.unchanged += 1
                continue
            pending.append(session.publish(topic, payload))
            report.published += 1
        for topic in sorted(set(retained or ()) - set(messages)):
            pending.append(session.publish(topic, b""))  # an empty retained message clears
            report.cleared += 1
        session.wait_acked(pending, deadline)
    finally:
        session.close()
    log.info(
        "KPI pack on %s: %d topics, %d published, %d unchanged, %d cleared (newest day %s)",
        report.broker,
        report.topics,
        report.published,
        report.unchanged,
        report.cleared,
        report.newest_day,
    )


def _write_status(settings: Settings, report: PublishReport, error: str | None) -> None:
    from ingestion.metrics import write_status

    doc = {
        "at": datetime.now(UTC).isoformat(),
        "ok": error is None,
        "error": error,
        **asdict(report),
    }
    try:
        write_status(status_path(settings), doc)
    except OSError:
        log.exception("could not write %s", status_path(settings))


def _open_session(
    broker: Any, client_id: str, username: str | None, password: str | None, deadline: float
) -> _Session:
    """MQTT 5 (a PUBACK then says when the broker refused a message, e.g. an ACL; 3.1.1
    acknowledges and drops it silently), 3.1.1 when the broker does not speak 5."""
    session = _Session(broker, "5", client_id, username, password)
    try:
        session.open(deadline)
    except _ProtocolRefused:
        session = _Session(broker, "3.1.1", client_id, username, password)
        session.open(deadline)
    return session


class _ProtocolRefused(PublishError):
    """The broker does not accept this MQTT version."""


class _Session:
    """One short MQTT connection of the publisher (paho's network loop in its thread)."""

    def __init__(
        self,
        broker: Any,
        version: ProtocolVersion,
        client_id: str,
        username: str | None,
        password: str | None,
    ) -> None:
        self.broker = broker
        self.version = version
        self.client = make_client(
            broker, version, client_id=client_id, username=username, password=password
        )
        self._refusals: dict[int, str] = {}  # mid -> the PUBACK's failure reason (MQTT 5)
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self._refused: str | None = None
        self._subscribed = threading.Event()
        self._unsubscribed = threading.Event()
        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}
        self._last_message = 0.0
        self.client.on_connect = self._on_connect
        self._read_refused: str | None = None
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = lambda *a: self._unsubscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, *rest: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = str(reason)
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, *rest: Any) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            self._read_refused = str(refused[0])
        self._subscribed.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, *rest: Any) -> None:
        if getattr(reason, "is_failure", False):
            with self._lock:
                self._refusals[mid] = str(reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.retain:  # only what the broker retained when we subscribed
            with self._lock:
                self._retained[msg.topic] = bytes(msg.payload)
                self._last_message = time.monotonic()

    def open(self, deadline: float) -> None:
        where = f"{self.broker.host}:{self.broker.port}"
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise PublishError(f"cannot reach the broker at {where}: {exc}") from exc
        self.client.loop_start()
        wait_s = deadline - time.monotonic()
        if self.version == "5":  # a broker without MQTT 5 may just never answer (amqtt)
            wait_s = min(wait_s, V5_CONNACK_S)
        if not self._connected.wait(max(0.0, wait_s)):
            self.close()
            if self.version == "5":
                raise _ProtocolRefused(f"no CONNACK to MQTT 5 within {V5_CONNACK_S:g} s")
            raise PublishError(f"no CONNACK from the broker at {where}")
        if self._refused is not None:
            self.close()
            if self.version == "5" and "protocol" in self._refused.lower():
                raise _ProtocolRefused(self._refused)
            raise PublishError(f"the broker at {where} refused the connection: {self._refused}")

    def read_retained(self, topic_filter: str, deadline: float) -> dict[str, bytes] | None:
        """What the broker retains under the filter now (topic -> payload, empty ones left
        out); None when the broker refuses to let us read it (an ACL granting write only)."""
        self.client.subscribe(topic_filter, qos=QOS)
        if not self._subscribed.wait(max(0.0, deadline - time.monotonic())):
            raise PublishError(f"no SUBACK for {topic_filter}")
        if self._read_refused is not None:
            return None
        self._last_message = time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                quiet = time.monotonic() - self._last_message
            if quiet >= RETAINED_QUIET_S:
                break
            time.sleep(0.05)
        # Our own publications must not come back as "retained": stop listening first.
        self.client.unsubscribe(topic_filter)
        if not self._unsubscribed.wait(max(0.0, deadline - time.monotonic())):
            raise PublishError(f"no UNSUBACK for {topic_filter}")
        with self._lock:
            return {t: p for t, p in self._retained.items() if p}

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=QOS, retain=True)
        if info.rc != 0:
            raise PublishError(f"publish to {topic} refused by the client (rc {info.rc})")
        return info

    def wait_acked(self, infos: list[Any], deadline: float) -> None:
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        missing = sum(1 for i in infos if not i.is_published())
        if missing:
            raise PublishError(f"{missing} of {len(infos)} messages not acknowledged in time")
        with self._lock:
            refused = [(i.mid, self._refusals[i.mid]) for i in infos if i.mid in self._refusals]
        if refused:
            raise PublishError(
                f"the broker refused {len(refused)} of {len(infos)} messages"
                f" ({refused[0][1]}; its ACL must let this account write city/{{city}}/kpi/#)"
            )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
