"""The one broker-URL parser and the one paho client factory (common.mqtt)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from common.mqtt import (
    BrokerAddress,
    ProtocolVersion,
    make_client,
    parse_broker_url,
    session_connect_args,
)
from simulator.broker import BrokerHandle


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("mqtt://broker.example", False, 1883),
        ("tcp://broker.example", False, 1883),
        ("mqtts://broker.example", True, 8883),
        ("ssl://broker.example", True, 8883),
        ("tls://broker.example", True, 8883),
        ("MQTTS://broker.example", True, 8883),
        ("broker.example", False, 1883),  # no scheme: mqtt://
    ],
)
def test_schemes_and_default_ports(url: str, tls: bool, port: int) -> None:
    assert parse_broker_url(url) == BrokerAddress("broker.example", port, tls)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("mqtt://10.0.0.7:1884", "10.0.0.7", 1884),
        ("mqtts://broker.example:443/", "broker.example", 443),
        ("broker.example:2883", "broker.example", 2883),
        ("mqtt://[::1]:1883", "::1", 1883),
        ("  mqtt://Broker.Example:1  ", "broker.example", 1),
        ("mqtt://h:65535", "h", 65535),
    ],
)
def test_hosts_and_ports(url: str, host: str, port: int) -> None:
    b = parse_broker_url(url)
    assert (b.host, b.port) == (host, port)


def test_user_info_is_decoded_and_the_password_only_noticed() -> None:
    b = parse_broker_url("mqtt://ci%40city:s3cr%2Ft@broker:1883")
    assert b.username == "ci@city"
    assert b.password_in_url
    assert "s3cr" not in repr(b)
    assert b.label() == "ci@city@broker:1883"
    plain = parse_broker_url("mqtt://citypipe@broker")
    assert (plain.username, plain.password_in_url) == ("citypipe", False)
    assert plain.label("other") == "citypipe@broker:1883"  # the URL's user wins
    anonymous = parse_broker_url("mqtt://broker")
    assert anonymous.username is None
    assert anonymous.label("fromsettings") == "fromsettings@broker:1883"
    assert anonymous.label() == "broker:1883"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "empty broker URL"),
        ("http://broker:1883", "unsupported broker URL scheme 'http'"),
        ("ws://broker", "unsupported broker URL scheme 'ws'"),
        ("mqtt://", "names no host"),
        ("mqtt://user@:1883", "names no host"),
        ("mqtt://broker:port", "port is not a number"),
        ("mqtt://broker:70000", "port is not a number"),
        ("mqtt://broker:0", "port 0"),
        ("mqtt://broker:1883/city", "path, query or fragment"),
        ("mqtt://broker:1883?x=1", "path, query or fragment"),
        ("mqtt://broker#frag", "path, query or fragment"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("?", r"\?")):
        parse_broker_url(url)


def test_a_persistent_session_needs_a_client_id() -> None:
    with pytest.raises(ValueError, match="fixed client id"):
        make_client(parse_broker_url("mqtt://broker"), "5", persistent=True)


def test_connect_args() -> None:
    assert session_connect_args("3.1.1", session_expiry_s=60, receive_maximum=10) == {}
    args = session_connect_args("5", session_expiry_s=60, receive_maximum=10)
    assert args["clean_start"] is False
    assert args["properties"].SessionExpiryInterval == 60
    assert args["properties"].ReceiveMaximum == 10


def _connect(broker: BrokerHandle, version: ProtocolVersion) -> bool:
    """Connect with the factory's persistent session; return the broker's session-present flag."""
    client = make_client(
        parse_broker_url(broker.url), version, client_id=f"factory-{version}", persistent=True
    )
    got: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        got["present"], got["failure"] = flags.session_present, rc.is_failure
        done.set()

    client.on_connect = on_connect
    args = session_connect_args(version, session_expiry_s=600, receive_maximum=100)
    client.connect(broker.host, broker.port, **args)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    assert not got["failure"]
    return bool(got["present"])


@pytest.mark.integration
@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_the_factory_resumes_its_session(
    mosquitto_broker: BrokerHandle, version: ProtocolVersion
) -> None:
    assert _connect(mosquitto_broker, version) is False  # a new session
    assert _connect(mosquitto_broker, version) is True  # the broker kept it
