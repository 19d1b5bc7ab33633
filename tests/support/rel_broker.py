"""A real Mosquitto secured as shipped, and MQTT clients that record what they are told.

Shared by tests/integration/deploy/test_broker_acl.py and tests/reliability/test_rel_broker_acl.py
(the fixture is imported by name in both). The broker runs deploy/mosquitto/acl as shipped, a
password file made by deploy/mosquitto/build-passwd.sh (mosquitto_passwd) from secrets written
here, and the project's mosquitto.conf with anonymous access refused (simulator/broker.py adds the
loopback listener and a private data folder).

To see what the broker let through, the ACL gets one extra account here, ``test-observer``, that
reads every topic, ``$SYS`` included; the shipped lines are loaded unchanged. Denied publishes are
checked twice: MQTT 5 reports them in the PUBACK (reason 135, not authorised), and no subscriber
receives them before a later, allowed message from the same connection.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citypipe.broker_acl import ALERTS_ACCOUNT, HEALTH_ACCOUNT, INGEST_ACCOUNT, SERVING_ACCOUNT
from common.catalogue import Catalogue
from common.settings import REPO_ROOT
from simulator.broker import BrokerHandle, BrokerUnavailable, start_broker

CITY = "wushan"
NOT_AUTHORISED = 135  # MQTT 5 reason code
OBSERVER = "test-observer"
WAIT_S = 10.0


@dataclass
class SecuredBroker:
    handle: BrokerHandle
    passwords: dict[str, str]
    sites: dict[str, str] = field(default_factory=dict)  # sensor account -> its topic


@dataclass
class Client:
    """A paho client that records what it receives and the reason code of each PUBACK."""

    client: mqtt.Client
    connack: int | None = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, predicate: object, timeout: float = WAIT_S) -> bool:
        with self.lock:
            return self.lock.wait_for(predicate, timeout)  # type: ignore[arg-type]

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1 and return the SUBACK's reason code (0-2: granted QoS)."""
        codes: list[int] = []
        done = threading.Event()

        def on_subscribe(
            client: object, userdata: object, mid: int, reasons: list[object], props: object
        ) -> None:
            codes.extend(int(getattr(r, "value", r)) for r in reasons)  # type: ignore[call-overload]
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert done.wait(WAIT_S), f"no SUBACK for {topic}"
        return codes[0]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0: accepted)."""
        codes: dict[int, int] = {}
        done = threading.Condition()

        # Keyed by message id: paho also calls on_publish when an earlier QoS 0 message of this
        # client leaves the socket, which must not pass for this message's PUBACK.
        def on_publish(
            client: object, userdata: object, mid: int, rc: object, props: object
        ) -> None:
            with done:
                codes[mid] = int(getattr(rc, "value", 0))
                done.notify_all()

        self.client.on_publish = on_publish
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        with done:
            assert done.wait_for(lambda: info.mid in codes, WAIT_S), f"no PUBACK for {topic}"
        return codes[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    broker: SecuredBroker,
    username: str | None,
    password: str | None = None,
    *,
    client_id: str | None = None,
    persistent: bool = False,
    v311: bool = False,
) -> Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"t-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv311 if v311 else mqtt.MQTTv5,
    )
    wrapper = Client(client)
    if username is not None:
        pw = password if password is not None else broker.passwords[username]
        client.username_pw_set(username, pw)
    connected = threading.Event()

    def on_connect(c: object, u: object, flags: object, rc: object, props: object) -> None:
        wrapper.connack = int(getattr(rc, "value", rc))  # type: ignore[arg-type]
        connected.set()

    def on_message(c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        with wrapper.lock:
            wrapper.messages.append((msg.topic, msg.payload))
            wrapper.lock.notify_all()

    client.on_connect = on_connect
    client.on_message = on_message
    if v311:
        client.connect(broker.handle.host, broker.handle.port)
    else:
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 300
        client.connect(
            broker.handle.host, broker.handle.port, clean_start=not persistent, properties=props
        )
    client.loop_start()
    assert connected.wait(WAIT_S), "no CONNACK"
    return wrapper


@pytest.fixture(name="secured")
def secured_broker(tmp_path: Path, catalogue: Catalogue) -> Iterator[SecuredBroker]:
    passwd_bin = shutil.which("mosquitto_passwd")
    try:
        if passwd_bin is None:
            raise BrokerUnavailable("mosquitto_passwd not found")
        # Three sensor accounts of two feeds, plus the observer, in the sensor secrets file.
        sites = {
            s.site_id: f"city/{CITY}/{s.feed}/{s.site_id}"
            for s in (catalogue.sites["WS-AIR-01"], catalogue.sites["WS-AIR-02"])
        }
        wlg = catalogue.by_feed("waterlogging")[0]
        sites[wlg.site_id] = f"city/{CITY}/waterlogging/{wlg.site_id}"
        accounts = [INGEST_ACCOUNT, ALERTS_ACCOUNT, SERVING_ACCOUNT, HEALTH_ACCOUNT]
        passwords = {name: secrets.token_hex(16) for name in [*accounts, *sites, OBSERVER]}
        secret_dir = tmp_path / "secrets"
        secret_dir.mkdir(mode=0o700)
        for name in accounts:
            short = name.removeprefix("citypipe-")
            (secret_dir / f"mqtt_{short}_password").write_text(passwords[name] + "\n")
        (secret_dir / "mqtt_sensor_accounts").write_text(
            "# site_id:password\n" + "".join(f"{n}:{passwords[n]}\n" for n in [*sites, OBSERVER])
        )
        passwd = tmp_path / "passwd"
        subprocess.run(
            ["sh", str(REPO_ROOT / "deploy/mosquitto/build-passwd.sh")],
            env={**os.environ, "SECRETS": str(secret_dir), "OUT": str(passwd)},
            check=True,
            capture_output=True,
        )
        acl = tmp_path / "acl"
        shipped = (REPO_ROOT / "deploy/mosquitto/acl").read_text(encoding="utf-8")
        acl.write_text(
            shipped + f"\nuser {OBSERVER}\ntopic read #\ntopic read $SYS/#\n", encoding="utf-8"
        )
        handle = start_broker(
            tmp_path / "broker",
            prefer="mosquitto",
            extra_config={
                "allow_anonymous": "false",
                "password_file": str(passwd),
                "acl_file": str(acl),
            },
        )
    except BrokerUnavailable as exc:
        if os.environ.get("CITYPIPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(f"CITYPIPE_REQUIRE_MOSQUITTO=1 but mosquitto is unavailable: {exc}")
        pytest.skip(f"mosquitto or mosquitto_passwd unavailable: {exc}")
    with handle:
        yield SecuredBroker(handle, passwords, sites)


def anonymous_refused_311(secured: SecuredBroker) -> bool:
    anonymous = connect(secured, None, v311=True)
    anonymous.close()
    return anonymous.connack not in (None, 0)
