"""The shipped broker files in a real Mosquitto: deploy/mosquitto/acl as shipped, a password file
made by deploy/mosquitto/build-passwd.sh (mosquitto_passwd) from secrets written here, and the
project's mosquitto.conf with anonymous access refused (simulator/broker.py adds the loopback
listener and a private data folder).

To see what the broker let through, the ACL gets one extra account here, `test-observer`, that
reads every topic; the shipped lines are loaded unchanged. Denied publishes are checked twice:
MQTT 5 reports them in the PUBACK (reason 135, not authorised), and no subscriber receives them
before a later, allowed message from the same connection.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.rel_broker import (
    CITY,
    NOT_AUTHORISED,
    OBSERVER,
    WAIT_S,
    SecuredBroker,
    anonymous_refused_311,
    connect,
    secured_broker,  # noqa: F401  (the `secured` fixture)
)

from citypipe.broker_acl import (
    ALERTS_ACCOUNT,
    HEALTH_ACCOUNT,
    INGEST_ACCOUNT,
    SERVING_ACCOUNT,
    SHARED_GROUP,
)
from common.settings import REPO_ROOT


def test_the_password_file_holds_only_hashes(secured: SecuredBroker, tmp_path: Path) -> None:
    text = (tmp_path / "passwd").read_text()
    assert (tmp_path / "passwd").stat().st_mode & 0o077 == 0, "password file readable by others"
    for name, password in secured.passwords.items():
        assert f"\n{name}:$7$" in f"\n{text}", f"{name} missing or not hashed"
        assert password not in text


def test_anonymous_clients_and_wrong_passwords_are_refused(secured: SecuredBroker) -> None:
    anonymous = connect(secured, None)
    assert anonymous.connack not in (None, 0), "anonymous client accepted"
    wrong = connect(secured, "WS-AIR-01", "not-the-password")
    assert wrong.connack not in (None, 0), "wrong password accepted"
    other = connect(secured, "WS-AIR-01", secured.passwords["WS-AIR-02"])
    assert other.connack not in (None, 0), "another account's password accepted"
    right = connect(secured, "WS-AIR-01")
    assert right.connack == 0
    for c in (anonymous, wrong, other, right):
        c.close()


def test_the_ingest_account_receives_its_sensors(secured: SecuredBroker) -> None:
    ingest = connect(secured, INGEST_ACCOUNT)
    ingest.subscribe(f"city/{CITY}/+/+")  # Settings.topic_filter
    for site, topic in secured.sites.items():
        sensor = connect(secured, site)
        assert sensor.publish(topic, b'{"seq": 1}') == 0, f"{site} refused on its own topic"
        sensor.close()
    assert ingest.wait(lambda: len(ingest.messages) == len(secured.sites))
    assert sorted(ingest.topics()) == sorted(secured.sites.values())
    ingest.close()


def test_a_sensor_publishes_only_to_its_own_site(secured: SecuredBroker) -> None:
    ingest = connect(secured, INGEST_ACCOUNT)
    ingest.subscribe(f"city/{CITY}/#")
    observer = connect(secured, OBSERVER)
    observer.subscribe("#")
    sensor = connect(secured, "WS-AIR-01")
    forbidden = [
        f"city/{CITY}/air/WS-AIR-02",  # another site of the same feed
        f"city/{CITY}/waterlogging/WS-AIR-01",  # its own name under another feed
        f"city/{CITY}/kpi/aqi",
        f"city/{CITY}/kpi/air/daily",
        f"city/{CITY}/alert/waterlogging/WS-WLG-01",
        "city/othercity/air/WS-AIR-01",
        "$share/citypipe/city/wushan/air/WS-AIR-01",
    ]
    codes = {topic: sensor.publish(topic) for topic in forbidden}
    assert codes == dict.fromkeys(forbidden, NOT_AUTHORISED)
    own = secured.sites["WS-AIR-01"]
    assert sensor.publish(own, b"marker") == 0
    for sub in (ingest, observer):
        assert sub.wait(lambda sub=sub: own in sub.topics())
    time.sleep(0.3)
    assert ingest.topics() == [own], "the ingest account received a forbidden publish"
    assert [t for t in observer.topics() if not t.startswith("$SYS")] == [own]
    for c in (ingest, observer, sensor):
        c.close()


def test_an_mqtt_311_sensor_is_held_to_its_topic_too(secured: SecuredBroker) -> None:
    """MQTT 3.1.1 has no reason code in PUBACK: the broker acknowledges and drops."""
    observer = connect(secured, OBSERVER)
    observer.subscribe(f"city/{CITY}/#")
    sensor = connect(secured, "WS-AIR-02", v311=True)
    assert sensor.connack == 0
    assert anonymous_refused_311(secured)
    for topic in (secured.sites["WS-AIR-01"], f"city/{CITY}/kpi/aqi", f"city/{CITY}/alert/a/b"):
        sensor.publish(topic)
    own = secured.sites["WS-AIR-02"]
    sensor.publish(own, b"marker")
    assert observer.wait(lambda: own in observer.topics())
    time.sleep(0.3)
    assert observer.topics() == [own]
    for c in (observer, sensor):
        c.close()


def test_the_ingest_account_cannot_publish(secured: SecuredBroker) -> None:
    observer = connect(secured, OBSERVER)
    observer.subscribe(f"city/{CITY}/#")
    ingest = connect(secured, INGEST_ACCOUNT)
    for topic in (secured.sites["WS-AIR-01"], f"city/{CITY}/kpi/aqi", f"city/{CITY}/alert/x/y"):
        assert ingest.publish(topic) == NOT_AUTHORISED, topic
    sensor = connect(secured, "WS-AIR-02")
    assert sensor.publish(secured.sites["WS-AIR-02"], b"marker") == 0
    assert observer.wait(lambda: len(observer.messages) >= 1)
    time.sleep(0.3)
    assert observer.topics() == [secured.sites["WS-AIR-02"]]
    for c in (observer, ingest, sensor):
        c.close()


def test_serving_and_alert_accounts_publish_only_their_topics(secured: SecuredBroker) -> None:
    observer = connect(secured, OBSERVER)
    observer.subscribe(f"city/{CITY}/#")
    serving = connect(secured, SERVING_ACCOUNT)
    alerts = connect(secured, ALERTS_ACCOUNT)
    kpi, alert = f"city/{CITY}/kpi/air/aqi", f"city/{CITY}/alert/waterlogging/WS-WLG-01"
    assert serving.publish(kpi, b"kpi") == 0
    assert alerts.publish(alert, b"alert", retain=True) == 0
    assert serving.publish(alert) == NOT_AUTHORISED
    assert serving.publish(secured.sites["WS-AIR-01"]) == NOT_AUTHORISED
    assert alerts.publish(f"city/{CITY}/kpi/x") == NOT_AUTHORISED
    assert alerts.publish(secured.sites["WS-AIR-01"]) == NOT_AUTHORISED
    assert alerts.publish("city/other/alert/waterlogging/X") == NOT_AUTHORISED
    assert observer.wait(lambda: len(observer.messages) >= 2)
    time.sleep(0.3)
    assert sorted(observer.topics()) == sorted([kpi, alert])
    # The alert service reads the sensors (its own session, like ingest) but no KPI topic.
    alerts.subscribe(f"city/{CITY}/#")
    sensor = connect(secured, "WS-AIR-01")
    assert serving.publish(kpi, b"kpi2") == 0
    assert sensor.publish(secured.sites["WS-AIR-01"], b"reading") == 0
    assert alerts.wait(lambda: secured.sites["WS-AIR-01"] in alerts.topics())
    time.sleep(0.3)
    assert kpi not in alerts.topics()
    for c in (observer, serving, alerts, sensor):
        c.close()


def test_two_ingest_sessions_split_one_shared_subscription(secured: SecuredBroker) -> None:
    shared = f"$share/{SHARED_GROUP}/city/{CITY}/+/+"  # `citypipe ingest --shared`
    members = [
        connect(secured, INGEST_ACCOUNT, client_id=f"citypipe-ingest-{CITY}-{n}", persistent=True)
        for n in (1, 2)
    ]
    for member in members:
        member.subscribe(shared)
    sensor = connect(secured, "WS-AIR-01")
    n_messages = 40
    for i in range(n_messages):
        assert sensor.publish(secured.sites["WS-AIR-01"], str(i).encode()) == 0
    total = lambda: sum(len(m.messages) for m in members)  # noqa: E731
    deadline = time.monotonic() + WAIT_S
    while total() < n_messages and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    got = [{p for _, p in m.messages} for m in members]
    assert total() == n_messages, "lost or duplicated on the shared subscription"
    assert got[0].isdisjoint(got[1]), "a message went to both members"
    assert got[0] | got[1] == {str(i).encode() for i in range(n_messages)}
    assert all(got), f"one member got nothing: {[len(g) for g in got]}"
    for c in (*members, sensor):
        c.close()


def test_the_health_account_reads_the_broker_uptime_only(secured: SecuredBroker) -> None:
    health = connect(secured, HEALTH_ACCOUNT)
    health.subscribe("$SYS/broker/uptime")
    assert health.wait(lambda: "$SYS/broker/uptime" in health.topics()), "no retained uptime"
    health.subscribe(f"city/{CITY}/#")
    sensor = connect(secured, "WS-AIR-01")
    assert sensor.publish(secured.sites["WS-AIR-01"]) == 0
    time.sleep(0.5)
    assert all(t.startswith("$SYS") for t in health.topics())
    assert health.publish(f"city/{CITY}/kpi/x") == NOT_AUTHORISED
    for c in (health, sensor):
        c.close()


def air_reading(seq: int, observed: datetime) -> bytes:
    doc = {
        "schema": "air/v1",
        "site_id": "WS-AIR-01",
        "device_id": "AQM-0101",
        "seq": seq,
        "observed_at": observed.isoformat(),
        "period_s": 60,
        "values": {"pm25": 30.0, "pm10": 50.0, "so2": 7.0, "no2": 24.0, "co": 0.7, "o3": 61.0},
    }
    return json.dumps(doc).encode()


def test_the_ingest_service_runs_as_compose_starts_it(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    """`citypipe ingest --shared` with a fixed client id, the ingest account and its password
    from a file: it lands what its sensors publish and nothing a sensor may not publish."""
    home = tmp_path / "home"
    password_file = tmp_path / "mqtt_ingest_password"
    password_file.write_text(secured.passwords[INGEST_ACCOUNT] + "\n")
    env = {
        **os.environ,
        "CITYPIPE_HOME": str(home),
        "CITYPIPE_CITY": CITY,
        "CITYPIPE_MQTT_URL": f"mqtt://{secured.handle.host}:{secured.handle.port}",
        "CITYPIPE_MQTT_USERNAME": INGEST_ACCOUNT,
        "CITYPIPE_MQTT_PASSWORD_FILE": str(password_file),
        "CITYPIPE_FLUSH_MAX_AGE_S": "0.3",
    }
    env.pop("CITYPIPE_MQTT_PASSWORD", None)
    log = tmp_path / "ingest.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "ingest", "--shared", "--until-idle", "4",
             "--client-id", f"citypipe-ingest-{CITY}-1", "--status-interval", "0.2"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "subscribed to" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            sensor = connect(secured, "WS-AIR-01")
            start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
            for seq in range(5):
                payload = air_reading(seq, start + timedelta(minutes=seq))
                assert sensor.publish(secured.sites["WS-AIR-01"], payload) == 0
            # Another site's topic, with a payload that would be valid there: dropped by the broker.
            assert sensor.publish(secured.sites["WS-AIR-02"], air_reading(9, start)) == 135
            sensor.close()
            assert proc.wait(timeout=60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert f"subscribed to $share/{SHARED_GROUP}/city/{CITY}/+/+" in text, text
    status = json.loads((home / "status" / "ingest.json").read_text())
    assert status["messages"]["received"] == 5 and status["messages"]["acked"] == 5, status
    air = status["feeds"]["air"]
    assert air["received"] == air["accepted"] == 5, status


def test_sighup_reloads_a_rotated_password_and_a_new_sites_acl(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    """docs/operations.md: rebuild the password file (`broker-passwd`), regenerate the ACL, then
    `kill -s HUP` the broker: the new password and the new site work, the old password not."""
    secret_dir = tmp_path / "secrets"
    old = secured.passwords[INGEST_ACCOUNT]
    new = secrets.token_hex(16)
    (secret_dir / "mqtt_ingest_password").write_text(new + "\n")
    new_site, new_password = "WS-AIR-99", secrets.token_hex(16)
    with open(secret_dir / "mqtt_sensor_accounts", "a") as fh:
        fh.write(f"{new_site}:{new_password}\n")
    subprocess.run(
        ["sh", str(REPO_ROOT / "deploy/mosquitto/build-passwd.sh")],
        env={**os.environ, "SECRETS": str(secret_dir), "OUT": str(tmp_path / "passwd")},
        check=True,
        capture_output=True,
    )
    new_topic = f"city/{CITY}/air/{new_site}"
    with open(tmp_path / "acl", "a") as fh:
        fh.write(f"user {new_site}\ntopic write {new_topic}\n")
    before = connect(secured, new_site, new_password)
    assert before.connack not in (None, 0), "the broker read the files before the HUP"
    assert secured.handle.pid is not None
    os.kill(secured.handle.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while True:
        sensor = connect(secured, new_site, new_password)
        if sensor.connack == 0 or time.monotonic() > deadline:
            break
        sensor.close()
        time.sleep(0.1)
    assert sensor.connack == 0, "the new site's account was not loaded on SIGHUP"
    assert connect(secured, INGEST_ACCOUNT, old).connack not in (None, 0), "old password works"
    ingest = connect(secured, INGEST_ACCOUNT, new)
    assert ingest.connack == 0
    ingest.subscribe(f"city/{CITY}/+/+")
    assert sensor.publish(new_topic, b"{}") == 0
    assert ingest.wait(lambda: new_topic in ingest.topics())
    for c in (before, sensor, ingest):
        c.close()
