"""Hostile clients against the broker as shipped (deploy/mosquitto/acl, password file, anonymous
refused): every forbidden attempt is watched by a privileged subscriber that reads every topic,
``$SYS`` included, and by a fresh one afterwards (retained messages), and nothing forbidden may
arrive. Each forbidden payload starts with ``forbidden:``, so a message from the broker itself
(``$SYS``) is never mistaken for one.

The fixture (`secured`) and the clients are tests/support/rel_broker.py's, shared with
tests/integration/deploy/test_broker_acl.py (which checks the allowed paths in detail).
Figures: attempts per account kind, refusals the broker reported, forbidden messages delivered.
"""

from __future__ import annotations

import socket
import struct
import time

from support.rel_broker import (
    CITY,
    NOT_AUTHORISED,
    OBSERVER,
    WAIT_S,
    Client,
    SecuredBroker,
    connect,
    secured_broker,  # noqa: F401  (the `secured` fixture)
)
from support.reliability import Figures, at_scale

from citypipe.broker_acl import (
    ALERTS_ACCOUNT,
    HEALTH_ACCOUNT,
    INGEST_ACCOUNT,
    SERVING_ACCOUNT,
    SHARED_GROUP,
)
from common.catalogue import FEEDS, Catalogue

FORBIDDEN = b"forbidden:"
SETTLE_S = 0.5  # after the last marker arrived: time for a stray message to arrive too
# MQTT 3.1.1 SUBACK "failure" and MQTT 5 reason codes a refused subscription may carry.
SUB_REFUSED = (0x80, NOT_AUTHORISED)


def _observer(secured: SecuredBroker) -> Client:
    observer = connect(secured, OBSERVER)
    assert observer.subscribe("#") <= 2
    assert observer.subscribe("$SYS/#") <= 2
    return observer


def _forbidden_received(client: Client) -> list[str]:
    with client.lock:
        return [t for t, p in client.messages if p.startswith(FORBIDDEN)]


def _other_site_topics(catalogue: Catalogue, own: str) -> list[str]:
    """Other sites' topics a sensor tries: every site at full scale, every 6th one at ci."""
    topics = sorted(f"city/{CITY}/{s.feed}/{s.site_id}" for s in catalogue.sites.values())
    topics = [t for t in topics if t != own]
    return at_scale(ci=topics[::6], full=topics)


def _sensor_targets(catalogue: Catalogue, site: str, own: str) -> list[str]:
    feed = own.split("/")[2]
    return [
        *_other_site_topics(catalogue, own),
        *(f"city/{CITY}/{f}/{site}" for f in FEEDS if f != feed),  # its name under another feed
        f"city/{CITY}/{feed}/{site.lower()}",  # topics are case-sensitive
        f"{own}/extra",  # below its topic
        f"city/{CITY}/{feed}",  # above it
        f"city/{CITY}/kpi/aqi",
        f"city/{CITY}/kpi/air/daily",
        f"city/{CITY}/kpi/{feed}/{site}",
        f"city/{CITY}/alert/waterlogging/{site}",
        f"city/{CITY}/alert/{feed}/{site}",
        f"city/othercity/{feed}/{site}",
        f"$share/{SHARED_GROUP}/{own}",
        "$SYS/broker/uptime",
        f"$SYS/{site}",
    ]


def _wait_for_markers(observer: Client, markers: set[str]) -> None:
    assert observer.wait(lambda: markers <= set(observer.topics())), "a marker never arrived"
    time.sleep(SETTLE_S)


def _retained_forbidden(secured: SecuredBroker) -> list[str]:
    """What a new privileged subscriber gets as retained messages: forbidden ones only."""
    late = _observer(secured)
    time.sleep(SETTLE_S)
    late.close()
    return _forbidden_received(late)


def test_sensor_accounts_cannot_publish_or_read_beyond_their_own_topic(
    secured: SecuredBroker, catalogue: Catalogue, figures: Figures
) -> None:
    observer = _observer(secured)
    attempts = refused = 0
    for n, (site, own) in enumerate(sorted(secured.sites.items())):
        # MQTT 5 (PUBACK says 135) for the first sites, 3.1.1 (PUBACK 0, dropped) for the last.
        v311 = n == len(secured.sites) - 1
        sensor = connect(secured, site, v311=v311)
        assert sensor.connack == 0
        for topic in _sensor_targets(catalogue, site, own):
            for retain in (False, True):  # retained onto a KPI or alert topic: refused too
                code = sensor.publish(topic, FORBIDDEN + topic.encode(), retain=retain)
                attempts += 1
                refused += code == NOT_AUTHORISED
                if not v311:
                    assert code == NOT_AUTHORISED, f"{site} -> {topic} (retain={retain}): {code}"
            # QoS 0 has no PUBACK at all: only the observer can tell.
            sensor.client.publish(topic, FORBIDDEN + topic.encode(), qos=0)
            attempts += 1
        assert sensor.publish(own, b"marker") == 0
        sensor.close()
    _wait_for_markers(observer, set(secured.sites.values()))
    delivered = _forbidden_received(observer)
    retained = _retained_forbidden(secured)
    observer.close()
    figures.add("sensor publish attempts", attempts, "publishes", "QoS 0, 1, retained; v5 + 3.1.1")
    figures.add("refused in PUBACK (MQTT 5)", refused, "publishes")
    figures.add(
        "forbidden messages delivered", len(delivered), "messages", "to a # + $SYS/# reader"
    )
    figures.add("forbidden messages retained", len(retained), "messages")
    assert delivered == [], f"the broker delivered: {sorted(set(delivered))[:10]}"
    assert retained == [], f"the broker retained: {sorted(set(retained))[:10]}"


def test_a_sensor_account_reads_nothing(secured: SecuredBroker, figures: Figures) -> None:
    """A stolen sensor password must not read other sites, the KPIs, the alerts or $SYS."""
    observer = _observer(secured)
    site, own = sorted(secured.sites.items())[0]
    other_site, other = sorted(secured.sites.items())[1]
    filters = [
        other,
        f"city/{CITY}/+/+",
        f"city/{CITY}/#",
        "#",
        own,  # even its own topic: sensors write, they do not read
        f"city/{CITY}/kpi/#",
        f"city/{CITY}/alert/#",
        f"$share/{SHARED_GROUP}/city/{CITY}/+/+",
        "$SYS/#",
        "$SYS/broker/uptime",
    ]
    spy = connect(secured, site)
    codes = {f: spy.subscribe(f) for f in filters}
    # What legitimate accounts publish while the spy listens (retained KPI and alert included).
    kpi, alert = f"city/{CITY}/kpi/air/aqi", f"city/{CITY}/alert/waterlogging/{other_site}"
    publishers = [
        (connect(secured, other_site), other, False),
        (connect(secured, site), own, False),
        (connect(secured, SERVING_ACCOUNT), kpi, True),
        (connect(secured, ALERTS_ACCOUNT), alert, True),
    ]
    for client, topic, retain in publishers:
        assert client.publish(topic, b"allowed", retain=retain) == 0
        client.close()
    _wait_for_markers(observer, {other, own, kpi, alert})
    # A second spy session subscribing after the retained KPI and alert exist.
    late = connect(secured, site, v311=True)
    late_codes = {f: late.subscribe(f) for f in filters}
    time.sleep(SETTLE_S)
    received = spy.topics() + late.topics()
    for c in (spy, late, observer):
        c.close()
    figures.add("sensor subscribe attempts", len(codes) + len(late_codes), "subscriptions")
    figures.add(
        "refused in SUBACK",
        sum(c in SUB_REFUSED for c in [*codes.values(), *late_codes.values()]),
        "subscriptions",
        "the rest granted, then filtered per message",
    )
    figures.add("messages a sensor account received", len(received), "messages")
    assert received == [], f"a sensor account read {received}"


def test_service_accounts_cannot_publish_sensor_data_or_read_sys(
    secured: SecuredBroker, catalogue: Catalogue, figures: Figures
) -> None:
    observer = _observer(secured)
    sensor_topics = [t for site, t in secured.sites.items()] + _other_site_topics(catalogue, "")
    forbidden = {
        INGEST_ACCOUNT: [*sensor_topics, f"city/{CITY}/kpi/aqi", f"city/{CITY}/alert/air/x"],
        SERVING_ACCOUNT: [*sensor_topics, f"city/{CITY}/alert/air/x", "city/other/kpi/aqi"],
        ALERTS_ACCOUNT: [*sensor_topics, f"city/{CITY}/kpi/aqi", "city/other/alert/air/x"],
        HEALTH_ACCOUNT: [*sensor_topics, f"city/{CITY}/kpi/aqi", "$SYS/broker/uptime"],
    }
    sys_readers: list[Client] = []
    for account, topics in forbidden.items():
        client = connect(secured, account)
        for topic in topics:
            code = client.publish(topic, FORBIDDEN + topic.encode(), retain=True)
            assert code == NOT_AUTHORISED, f"{account} -> {topic}: {code}"
        figures.add(f"{account} publish attempts", len(topics), "publishes", "all refused")
        # $SYS: only the health account, and only the uptime.
        client.subscribe("$SYS/#")
        sys_readers.append(client)
    marker = sorted(secured.sites.values())[0]
    sensor = connect(secured, sorted(secured.sites)[0])
    assert sensor.publish(marker, b"marker") == 0
    sensor.close()
    _wait_for_markers(observer, {marker})
    health = sys_readers[-1]
    health.subscribe("$SYS/broker/uptime")
    assert health.wait(lambda: "$SYS/broker/uptime" in health.topics()), "no uptime: no control"
    sys_seen = {
        account: {t for t in c.topics() if t.startswith("$SYS")}
        for account, c in zip(forbidden, sys_readers, strict=True)
    }
    observer_sys = {t for t in observer.topics() if t.startswith("$SYS")}
    delivered = _forbidden_received(observer)
    retained = _retained_forbidden(secured)
    for c in (*sys_readers, observer):
        c.close()
    figures.add("$SYS topics the observer read", len(observer_sys), "topics", "the control")
    figures.add("forbidden messages delivered", len(delivered), "messages")
    figures.add("forbidden messages retained", len(retained), "messages")
    assert len(observer_sys) > 1, "the broker published no $SYS: the check below proves nothing"
    assert sys_seen == {
        INGEST_ACCOUNT: set(),
        SERVING_ACCOUNT: set(),
        ALERTS_ACCOUNT: set(),
        HEALTH_ACCOUNT: {"$SYS/broker/uptime"},
    }
    assert delivered == [] and retained == []


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _connect_then_publish(
    secured: SecuredBroker, level: int, credentials: tuple[str, str] | None, topic: str
) -> bytes:
    """A client that does not wait for its CONNACK: CONNECT and a QoS 0 PUBLISH in one write.
    Returns the first bytes the broker answered (its CONNACK, then it closes)."""
    flags = 0x02  # clean session / clean start
    payload = _utf8(f"rogue-{level}-{time.monotonic_ns()}")
    if credentials is not None:
        flags |= 0xC0
        payload += _utf8(credentials[0]) + _utf8(credentials[1])
    props = b"\x00" if level == 5 else b""
    variable = _utf8("MQTT") + bytes([level, flags]) + struct.pack("!H", 30) + props
    body = variable + payload
    connect_packet = b"\x10" + _remaining_length(len(body)) + body
    publish_body = _utf8(topic) + props + FORBIDDEN + topic.encode()
    publish_packet = b"\x30" + _remaining_length(len(publish_body)) + publish_body
    with socket.create_connection((secured.handle.host, secured.handle.port), WAIT_S) as sock:
        sock.sendall(connect_packet + publish_packet)
        answer = b""
        try:
            while chunk := sock.recv(64):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_anonymous_and_wrong_password_clients_are_refused(
    secured: SecuredBroker, figures: Figures
) -> None:
    observer = _observer(secured)
    site, own = sorted(secured.sites.items())[0]
    other = sorted(secured.sites)[1]
    wrong: list[tuple[str | None, str | None]] = [
        (site, "not-the-password"),
        (site, secured.passwords[other]),  # another account's password
        (site, ""),
        (site.lower(), secured.passwords[site]),  # user names are case-sensitive
        ("no-such-account", "x"),
        (INGEST_ACCOUNT, secured.passwords[site]),
    ]
    anonymous_attempts = wrong_attempts = 0
    for v311 in (False, True):
        client = connect(secured, None, v311=v311)
        client.close()
        anonymous_attempts += 1
        assert client.connack not in (None, 0), f"anonymous accepted (v311={v311})"
        for user, password in wrong:
            client = connect(secured, user, password, v311=v311)
            client.close()
            wrong_attempts += 1
            assert client.connack not in (None, 0), f"{user!r} accepted (v311={v311})"
    # Clients that publish before their CONNACK comes back: the broker must drop the PUBLISH.
    for level in (4, 5):
        for credentials in (None, (site, "not-the-password")):
            answer = _connect_then_publish(secured, level, credentials, own)
            # CONNACK: type 0x20, remaining length, flags, then the return / reason code.
            assert answer[:1] == b"\x20" and len(answer) >= 4, f"no CONNACK: {answer!r}"
            assert answer[3] != 0, f"CONNACK accepted a rogue client: {answer!r}"
            if credentials is None:
                anonymous_attempts += 1
            else:
                wrong_attempts += 1
    sensor = connect(secured, site)
    assert sensor.publish(own, b"marker") == 0
    sensor.close()
    _wait_for_markers(observer, {own})
    delivered = _forbidden_received(observer)
    observer.close()
    figures.add("anonymous connection attempts", anonymous_attempts, "connections", "v5 + 3.1.1")
    figures.add("wrong-credential attempts", wrong_attempts, "connections", "v5 + 3.1.1")
    figures.add("forbidden messages delivered", len(delivered), "messages")
    assert delivered == []
