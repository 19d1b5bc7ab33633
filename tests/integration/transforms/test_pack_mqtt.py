"""MQTT publication of the KPI pack through a real Mosquitto: the steps of citypipe_daily_kpis
(plan, compute, publish_pack) on a real warehouse, then what a client that connects late gets
retained under city/{city}/kpi/{kpi_id}/{dimension}, compared with `citypipe kpis --date D`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.kpi_history import D, day_data

from citypipe.cli import main
from common.settings import Settings
from simulator.broker import BrokerHandle
from steps import kpis
from transforms.pack_publisher import PublishError, status_path
from warehouse import db

PREV = D - timedelta(days=1)


class Watcher:
    """Subscribes to city/{city}/kpi/#: every message, and which ones came retained."""

    def __init__(self, broker: BrokerHandle, city: str = "wushan") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"watch-{time.monotonic_ns()}"
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"city/{city}/kpi/#", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "watcher could not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_kpis(broker: BrokerHandle, wait_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """What a client connecting now gets retained under city/wushan/kpi/# (topic -> JSON)."""
    w = Watcher(broker)
    time.sleep(wait_s)
    w.close()
    return {t: json.loads(p) for t, p, r in w.messages if r and p}


def run_kpis(settings: Settings, day: date) -> kpis.RunResult:
    plan = kpis.plan(settings, {"date": day.isoformat()}, None)
    return kpis.compute(settings, plan, f"test {day}")


def cli_pack(day: date, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["kpis", "--date", day.isoformat(), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["kpis"]


@pytest.fixture
def computed(wh, insert_obs, settings: Settings) -> kpis.RunResult:
    """Two days computed by the DAG's own steps: PREV, then D (the newest)."""
    day_data(insert_obs, PREV)
    day_data(insert_obs, D)
    wh.close()
    run_kpis(settings, PREV)
    return run_kpis(settings, D)


@pytest.mark.backends("file", "sqlite")
def test_a_late_subscriber_gets_the_newest_pack_as_citypipe_kpis_prints_it(
    computed: kpis.RunResult,
    settings: Settings,
    mosquitto_broker: BrokerHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = settings.model_copy(update={"mqtt_url": mosquitto_broker.url})
    out = kpis.publish_pack(live, computed)
    assert out["skipped"] is None and out["invalid"] == 0 and out["newest_day"] == D.isoformat()

    expected = {
        f"city/wushan/kpi/{k['kpi_id']}/{k['dimension']}": {**k, "local_date": D.isoformat()}
        for k in cli_pack(D, capsys)
    }
    assert len(expected) >= 8
    assert out["topics"] == out["published"] == len(expected)
    got = retained_kpis(mosquitto_broker)  # connected after the publication: retained only
    assert got == expected
    county = got["city/wushan/kpi/water.class_ii_share/county"]
    assert {"value", "unit", "target", "status", "coverage_pct", "computed_at"} <= set(county)
    assert county["status"] in ("provisional", "final")

    status = json.loads(status_path(settings).read_text())
    assert status["ok"] is True and status["published"] == len(expected)
    assert status["client_id"] == "citypipe-kpis-wushan"


@pytest.mark.backends("file")
def test_republishing_is_idempotent_and_a_restated_or_removed_value_converges(
    computed: kpis.RunResult, settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    live = settings.model_copy(update={"mqtt_url": mosquitto_broker.url})
    first = kpis.publish_pack(live, computed)
    before = retained_kpis(mosquitto_broker)

    # Again, with a live subscriber: nothing new goes out, the retained state is the same.
    w = Watcher(mosquitto_broker)
    time.sleep(0.5)
    again = kpis.publish_pack(live, computed)
    time.sleep(0.5)
    w.close()
    assert (again["published"], again["unchanged"], again["cleared"]) == (0, first["topics"], 0)
    assert [m for m in w.messages if not m[2]] == []  # no live (non-retained) message
    assert retained_kpis(mosquitto_broker) == before

    # A pack row of the newest day changes (as a restatement would) and a dimension leaves
    # the pack on every day (a site removed): one message updates, one topic is cleared.
    changed = "city/wushan/kpi/water.class_ii_share/county"
    gone = ("traffic.tpi", "county")
    con = db.connect(settings)
    try:
        con.execute(
            "update kpi.pack_values set value = 0.0, value_text = '0/1'"
            " where kpi_id = 'water.class_ii_share' and dimension = 'county' and local_date = ?",
            [D],
        )
        con.execute("delete from kpi.pack_values where kpi_id = ? and dimension = ?", list(gone))
    finally:
        con.close()
    third = kpis.publish_pack(live, computed)
    assert (third["published"], third["cleared"]) == (1, 1)
    assert third["unchanged"] == first["topics"] - 2
    after = retained_kpis(mosquitto_broker)
    assert after[changed]["value"] == 0.0 and after[changed]["value_text"] == "0/1"
    assert f"city/wushan/kpi/{gone[0]}/{gone[1]}" not in after
    assert set(before) - set(after) == {f"city/wushan/kpi/{gone[0]}/{gone[1]}"}


@pytest.mark.backends("file")
def test_a_dimension_missing_on_the_newest_day_keeps_its_own_newest_day(
    computed: kpis.RunResult, settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    con = db.connect(settings)
    try:
        con.execute(
            "delete from kpi.pack_values where kpi_id = 'traffic.tpi' and local_date = ?", [D]
        )
        n = con.execute(
            "select count(*) from kpi.pack_values where kpi_id = 'traffic.tpi' and local_date = ?",
            [PREV],
        ).fetchone()
    finally:
        con.close()
    assert n is not None and n[0] > 0
    kpis.publish_pack(settings.model_copy(update={"mqtt_url": mosquitto_broker.url}), computed)
    got = retained_kpis(mosquitto_broker)
    days = {p["local_date"] for t, p in got.items() if p["kpi_id"] == "traffic.tpi"}
    assert days == {PREV.isoformat()}
    assert got["city/wushan/kpi/water.class_ii_share/county"]["local_date"] == D.isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.backends("file")
def test_a_broker_down_fails_loudly_and_the_retry_publishes(
    computed: kpis.RunResult, settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    down = settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    t0 = time.monotonic()
    with pytest.raises(PublishError, match="cannot reach the broker"):
        kpis.publish_pack(down, computed)
    assert time.monotonic() - t0 < 10
    status = json.loads(status_path(settings).read_text())
    assert status["ok"] is False and "cannot reach the broker" in status["error"]
    assert retained_kpis(mosquitto_broker, wait_s=0.5) == {}

    # The retry (or the next run) on a broker that is up publishes everything.
    out = kpis.publish_pack(
        settings.model_copy(update={"mqtt_url": mosquitto_broker.url}), computed
    )
    assert out["published"] == out["topics"] > 0
    assert json.loads(status_path(settings).read_text())["ok"] is True
    assert len(retained_kpis(mosquitto_broker)) == out["topics"]


@pytest.mark.backends("file")
def test_no_broker_configured_publishes_nothing_and_says_so(
    computed: kpis.RunResult, settings: Settings
) -> None:
    assert settings.mqtt_url is None
    out = kpis.publish_pack(settings, computed)
    assert out["published"] == 0 and out["skipped"] and "CITYPIPE_MQTT_URL" in out["skipped"]
    status = json.loads(status_path(settings).read_text())
    assert status["ok"] is True and status["skipped"] == out["skipped"]


@pytest.mark.backends("file")
def test_an_empty_pack_clears_nothing(
    wh, settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    # A warehouse with no KPI run yet (or the wrong one) must not wipe what the broker retains.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    wh.close()
    topic = "city/wushan/kpi/air.aqi/county"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="earlier-publisher")
    client.connect(mosquitto_broker.host, mosquitto_broker.port)
    client.loop_start()
    client.publish(topic, b'{"value": 42}', qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    live = settings.model_copy(update={"mqtt_url": mosquitto_broker.url})
    out = kpis.publish_pack(live, {"run_id": "r"})  # type: ignore[typeddict-item]
    assert out["skipped"] and "empty" in out["skipped"] and out["published"] == 0
    assert retained_kpis(mosquitto_broker) == {topic: {"value": 42}}


DAG_SHAPE = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags["citypipe_daily_kpis"]
t = dag.get_task("publish_pack")
print("RESULT" + json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "upstream": sorted(t.upstream_task_ids), "retries": t.retries, "pool": t.pool,
    "callback": bool(t.on_failure_callback), "backoff": float(t.retry_exponential_backoff),
}))
"""


@pytest.mark.backends("file")  # imports the DAG only
def test_the_dag_publishes_after_compute_with_retries(settings: Settings) -> None:
    from citypipe.rundag import airflow_env

    env = airflow_env(settings)
    proc = subprocess.run(
        [sys.executable, "-c", DAG_SHAPE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    out = json.loads(line.removeprefix("RESULT"))
    assert out["errors"] == {}
    assert out["upstream"] == ["compute"]
    assert out["retries"] >= 3 and out["backoff"] > 0 and out["callback"]
    assert out["pool"] != "citypipe_duckdb"  # it only reads


@pytest.mark.slow
@pytest.mark.backends("file")
def test_the_dag_run_publishes_the_pack(
    wh,
    insert_obs,
    settings: Settings,
    mosquitto_broker: BrokerHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`citypipe run citypipe_daily_kpis --date D` (real dag.test): compute, then publish_pack."""
    from citypipe.rundag import run_dag

    day_data(insert_obs, D)
    wh.close()
    monkeypatch.setenv("CITYPIPE_MQTT_URL", mosquitto_broker.url)  # the runner's environment
    assert run_dag(settings, "citypipe_daily_kpis", D) == 0
    got = retained_kpis(mosquitto_broker)
    expected = {
        f"city/wushan/kpi/{k['kpi_id']}/{k['dimension']}": {**k, "local_date": D.isoformat()}
        for k in cli_pack(D, capsys)
    }
    assert got == expected
    assert json.loads(status_path(settings).read_text())["published"] == len(expected)


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Callable[[str], BrokerHandle]]:
    """A Mosquitto with passwords and the given ACL for the account `citypipe-serving`
    (the deployment's KPI publisher account, deploy/mosquitto/acl) and a reader `observer`."""
    import shutil

    from simulator.broker import BrokerUnavailable, start_broker

    passwd_bin = shutil.which("mosquitto_passwd")
    if passwd_bin is None:
        if os.environ.get("CITYPIPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail("CITYPIPE_REQUIRE_MOSQUITTO=1 but mosquitto_passwd is unavailable")
        pytest.skip("mosquitto_passwd unavailable (Debian: the mosquitto package)")
    passwd = tmp_path / "passwd"
    for user, pw in (("citypipe-serving", SERVING_PW), ("observer", OBSERVER_PW)):
        flags = ["-b"] if passwd.exists() else ["-c", "-b"]
        subprocess.run([passwd_bin, *flags, str(passwd), user, pw], check=True)
    handles: list[BrokerHandle] = []

    def start(acl_lines: str) -> BrokerHandle:
        acl = tmp_path / f"acl{len(handles)}"
        acl.write_text(f"user citypipe-serving\n{acl_lines}\nuser observer\ntopic read #\n")
        try:
            handle = start_broker(
                tmp_path / f"broker{len(handles)}",
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
            pytest.skip(f"mosquitto unavailable: {exc}")
        handles.append(handle)
        return handle

    yield start
    for h in handles:
        h.stop()


SERVING_PW = "serving-" + "0123456789abcdef"
OBSERVER_PW = "observer-" + "0123456789abcdef"


def observed(broker: BrokerHandle) -> dict[str, dict[str, Any]]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: dict[str, dict[str, Any]] = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{time.monotonic_ns()}")
    c.username_pw_set("observer", OBSERVER_PW)
    c.on_connect = lambda cl, *a: cl.subscribe("city/wushan/kpi/#", qos=1)
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, json.loads(m.payload)) if m.payload else None  # fmt: skip
    c.connect(broker.host, broker.port)
    c.loop_start()
    time.sleep(1.0)
    c.disconnect()
    c.loop_stop()
    return got


@pytest.mark.backends("file")
def test_an_account_with_credentials_from_a_file_and_the_acl(
    computed: kpis.RunResult, settings: Settings, acl_broker, tmp_path: Path
) -> None:
    password_file = tmp_path / "mqtt_serving_password"
    password_file.write_text(SERVING_PW + "\n")
    account = {"mqtt_username": "citypipe-serving", "mqtt_password": None}

    def as_account(broker: BrokerHandle) -> Settings:
        # The password only from *_FILE, as a deployment gives it (Settings reads the file).
        s = Settings(
            home=settings.home,
            warehouse=settings.warehouse,
            mqtt_url=broker.url,
            mqtt_password_file=password_file,
            **account,
        )
        assert s.mqtt_password is not None
        return s

    # readwrite: publishes, and a rerun finds everything in place.
    rw = acl_broker("topic readwrite city/wushan/kpi/#")
    first = kpis.publish_pack(as_account(rw), computed)
    assert first["published"] == first["topics"] > 0 and first["degraded"] is None
    assert len(observed(rw)) == first["topics"]
    again = kpis.publish_pack(as_account(rw), computed)
    assert again["unchanged"] == first["topics"] and again["published"] == 0

    # write only (as deploy/mosquitto/acl ships it): still published, every message each time.
    wo = acl_broker("topic write city/wushan/kpi/#")
    kpis.publish_pack(as_account(wo), computed)
    again = kpis.publish_pack(as_account(wo), computed)
    assert again["published"] == again["topics"] and len(observed(wo)) == again["topics"]

    # No write access to the KPI topics: the broker's refusal is an error, not a silent drop.
    denied = acl_broker("topic readwrite city/wushan/alert/#")
    with pytest.raises(PublishError, match=r"refused .* messages"):
        kpis.publish_pack(as_account(denied), computed)
    assert json.loads(status_path(settings).read_text())["ok"] is False

    # A wrong password: refused at connect.
    password_file.write_text("not-the-password-123\n")
    with pytest.raises(PublishError, match="refused the connection"):
        kpis.publish_pack(as_account(rw), computed)


@pytest.mark.backends("file")
def test_a_broker_without_mqtt_5_gets_3_1_1(
    computed: kpis.RunResult, settings: Settings, tmp_path: Path
) -> None:
    # The demo's fallback broker when mosquitto is not installed (amqtt) does not answer MQTT 5.
    from simulator.broker import start_broker

    with start_broker(tmp_path / "amqtt", prefer="amqtt") as handle:
        assert handle.kind == "amqtt"
        live = settings.model_copy(update={"mqtt_url": handle.url})
        out = kpis.publish_pack(live, computed)
        assert out["published"] == out["topics"] > 0
        assert kpis.publish_pack(live, computed)["unchanged"] == out["topics"]
