"""MQTT for every part that talks to a broker: the one broker-URL parser and the one paho client factory.

Used by the ingest service (``ingestion.session``) and the simulator's publisher
(``simulator.simulate.Publisher``).

Broker URLs, ``[scheme://][user[:password]@]host[:port][/]``:

============  =====  ============
scheme        TLS    default port
============  =====  ============
``mqtt``      no     1883
``tcp``       no     1883
``mqtts``     yes    8883
``ssl``       yes    8883
``tls``       yes    8883
============  =====  ============

Without ``scheme://`` the URL is read as ``mqtt://`` (``host:1883``). The user name and password
are percent-decoded. A password in the URL is never used (secrets come only from
``CITYPIPE_MQTT_PASSWORD`` or ``CITYPIPE_MQTT_PASSWORD_FILE``): the parser only reports that one
was there, so that the caller can say it ignored it. Anything else (another scheme, no host, a
port that is not a number in 1..65535, a path, a query or a fragment) is a ``ValueError`` naming
what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

TLS_SCHEMES = frozenset({"mqtts", "ssl", "tls"})
PLAIN_SCHEMES = frozenset({"mqtt", "tcp"})
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883

ProtocolVersion = Literal["5", "3.1.1"]
# Tried in this order when the caller lets the broker decide: MQTT 5 first, 3.1.1 if refused.
FALLBACK_ORDER: tuple[ProtocolVersion, ...] = ("5", "3.1.1")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens and who we are there; never the password."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    # The URL carried a password, which is ignored (see the module docstring).
    password_in_url: bool = False

    def label(self, username: str | None = None) -> str:
        """``user@host:port`` for log lines (``username`` when the URL names none)."""
        user = self.username or username
        return f"{user}@{self.host}:{self.port}" if user else f"{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Read a broker URL (the table in the module docstring); ``ValueError`` says what is wrong."""
    text = url.strip()
    if not text:
        raise ValueError("empty broker URL (expected mqtt://[user@]host[:port])")
    parts = urlsplit(text if "://" in text else f"mqtt://{text}")
    scheme = parts.scheme.lower()
    if scheme not in TLS_SCHEMES | PLAIN_SCHEMES:
        known = ", ".join(sorted(TLS_SCHEMES | PLAIN_SCHEMES))
        raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} in {url!r} ({known})")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker URL {url!r} has a path, query or fragment: expected host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"broker URL {url!r}: the port is not a number in 1..65535") from None
    if port == 0:
        raise ValueError(f"broker URL {url!r}: port 0 is not a broker port")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} names no host (expected mqtt://[user@]host[:port])")
    tls = scheme in TLS_SCHEMES
    return BrokerAddress(
        host=parts.hostname,
        port=port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password_in_url=bool(parts.password),
    )


def make_client(
    broker: BrokerAddress,
    version: ProtocolVersion,
    *,
    client_id: str = "",
    persistent: bool = False,
    manual_ack: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> mqtt.Client:
    """A paho 2.x client (callback API v2) for ``broker``, not yet connected.

    ``persistent``: the broker keeps the session of the fixed ``client_id`` while we are away
    (MQTT 3.1.1 ``clean_session=False`` here; MQTT 5 asks for it at connect, see
    ``session_connect_args``). ``username`` applies when the URL names no user.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if persistent and not client_id:
        raise ValueError("a persistent session needs a fixed client id")
    if version == "5":
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
            manual_ack=manual_ack,
        )
    user = broker.username or username
    if user:
        client.username_pw_set(user, password)
    if broker.tls:
        client.tls_set()
    return client


def session_connect_args(
    version: ProtocolVersion, *, session_expiry_s: int, receive_maximum: int
) -> dict[str, Any]:
    """Keyword arguments of ``connect``/``connect_async`` that resume a persistent session.

    MQTT 5: ``clean_start=False`` with a session expiry (and the in-flight window we accept);
    MQTT 3.1.1 carries it in the client (``clean_session=False``), so nothing is added.
    """
    if version != "5":
        return {}
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: no annotations
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    return {"clean_start": False, "properties": props}
