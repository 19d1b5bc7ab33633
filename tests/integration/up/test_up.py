"""`citypipe up` for real (issue 12): one stack per module, started as a subprocess.

Readings published with a real MQTT client to the stack's broker reach the warehouse and the KPI
pack through DAG runs that Airflow's own scheduler queued and ran on the LocalExecutor (runs
triggered through Airflow's REST API, as an operator would; dag.test() is not involved).
A second `citypipe up` on the same data folder refuses; SIGTERM leaves no process and no
listening port behind. The tests run in file order and share the stack; the last one stops it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psutil
import pytest
from support.ingest_fixtures import landing_rows, publish

from citypipe.up import EXIT_ALREADY_UP, session_processes
from common.catalogue import load_catalogue
from common.mqtt import parse_broker_url
from common.settings import REPO_ROOT, Settings, get_settings
from simulator.broker import BrokerHandle
from simulator.simulate import generate
from warehouse import db

pytestmark = pytest.mark.slow

HEALTHY_WITHIN_S = 90.0
# How long the fixture waits for "up in N s" before it gives up (the 90 s is asserted below).
START_TIMEOUT_S = 240.0
DAG_RUN_TIMEOUT_S = 300.0
UP_LINE = re.compile(r"^up in \d+ s", re.MULTILINE)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up_command(api_port: int, airflow_port: int, mqtt_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "citypipe.cli",
        "up",
        "--port",
        str(api_port),
        "--airflow-port",
        str(airflow_port),
        "--mqtt-port",
        str(mqtt_port),
    ]


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    home: Path
    log: Path
    env: dict[str, str]
    up_after_s: float
    # Every part's process group and session, known once the stack is up (for teardown).
    pgids: frozenset[int] = frozenset()

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "up" / "state.json").read_text(encoding="utf-8")))

    def settings(self) -> Settings:
        return get_settings(home=self.home, warehouse=None, mqtt_url=None)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("up")
    home = root / "home"
    # Nothing of a developer's citypipe or Airflow configuration leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CITYPIPE_", "AIRFLOW_", "AIRFLOW__"))
    }
    env["CITYPIPE_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    log = root / "up.log"
    cmd = [*up_command(*free_ports(3)), "--timeout", str(START_TIMEOUT_S)]
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack = Up(proc, home, log, env, 0.0)
    try:
        while not UP_LINE.search(stack.output):
            if stack.proc.poll() is not None:
                pytest.fail(f"citypipe up exited {stack.proc.returncode}:\n{stack.output[-4000:]}")
            if time.monotonic() - t0 > START_TIMEOUT_S + 30:
                pytest.fail(
                    f"citypipe up not up after {START_TIMEOUT_S:g} s:\n{stack.output[-4000:]}"
                )
            time.sleep(0.5)
        stack.up_after_s = time.monotonic() - t0
        stack.pgids = frozenset(int(p["pgid"]) for p in stack.state["parts"].values())
        yield stack
    finally:
        _stop_for_good(stack)


def _stop_for_good(stack: Up) -> None:
    """Teardown after a failed test: the stack and all its parts go, whatever happened."""
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGTERM)
        try:
            stack.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait()
    for proc in session_processes(stack.pgids):
        proc.kill()


class Airflow:
    """Airflow 3's REST API with the stack's admin login (a JWT from /auth/token)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.base = state["airflow_url"]
        user = state["airflow_user"]
        password = json.loads(Path(state["airflow_passwords_file"]).read_text())[user]
        r = httpx.post(
            self.base + "/auth/token", json={"username": user, "password": password}, timeout=30
        )
        assert r.status_code == 201, r.text
        self.client = httpx.Client(
            base_url=self.base + "/api/v2",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
            timeout=30,
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": conf}
        r = self.client.post(f"/dags/{dag_id}/dagRuns", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100})
        assert r.status_code == 200, r.text
        return list(r.json()["dag_runs"])

    def tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        assert r.status_code == 200, r.text
        return list(r.json()["task_instances"])

    def wait(
        self, dag_id: str, run_id: str, timeout_s: float = DAG_RUN_TIMEOUT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            r = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            assert r.status_code == 200, r.text
            run = dict(r.json())
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                states = [
                    (t["task_id"], t["map_index"], t["state"]) for t in self.tasks(dag_id, run_id)
                ]
                others = [(x["dag_run_id"], x["state"]) for x in self.runs(dag_id)]
                pytest.fail(f"{dag_id} {run_id} still {run['state']}: {states}; runs {others}")
            time.sleep(2)


def test_up_answers_on_its_health_endpoints_within_90_s(up: Up) -> None:
    state = up.state
    assert state["healthy"] is True
    assert up.up_after_s <= HEALTHY_WITHIN_S, (
        f"citypipe up took {up.up_after_s:.0f} s to be healthy:\n{up.output[-3000:]}"
    )
    assert httpx.get(state["api_url"] + "/health", timeout=10).status_code == 200
    health = httpx.get(state["airflow_url"] + "/api/v2/monitor/health", timeout=10).json()
    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[part]["status"] == "healthy", health
    with socket.create_connection(("127.0.0.1", state["ports"]["mqtt"]), timeout=5):
        pass
    out = up.output
    # The URLs, the login and where each credential comes from (never the secrets themselves).
    assert f"{state['api_url']}/docs" in out and f"{state['airflow_url']}/" in out
    key_file = up.home / "up" / "api-keys"
    assert f"API key      in {key_file} (generated)" in out
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().strip() not in out
    pw_file = Path(state["airflow_passwords_file"])
    assert f"user admin, password in {pw_file}" in out
    assert pw_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(pw_file.read_text())["admin"] not in out


def test_a_second_up_on_the_same_data_folder_refuses(up: Up) -> None:
    t0 = time.monotonic()
    second = subprocess.run(
        up_command(*free_ports(3)), env=up.env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == EXIT_ALREADY_UP, second.stdout + second.stderr
    assert f"citypipe up is already running on data folder {up.home}" in second.stderr
    assert time.monotonic() - t0 < 60
    # ... and the first one did not notice.
    assert httpx.get(up.state["api_url"] + "/health", timeout=10).status_code == 200
    assert up.proc.poll() is None


def test_readings_reach_the_kpi_pack_through_the_airflow_scheduler(up: Up) -> None:
    settings = up.settings()
    state = up.state
    tz = ZoneInfo(settings.timezone)
    day = datetime.now(tz).date() - timedelta(days=1)

    # A simulated hour of two air stations (and whatever else the simulator sends by then),
    # no faults: every reading must be accepted, landed, validated and loaded.
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    messages = list(
        itertools.islice(generate(catalogue, day, 1, seed=5, faults="none", feeds=["air"]), 120)
    )
    expected_air = sum(m.outcomes.count("accept") for m in messages)
    assert expected_air >= 100
    addr = parse_broker_url(state["mqtt_url"])
    broker = BrokerHandle("mosquitto", addr.host, addr.port, up.home, username=addr.username)
    publish(broker, [(m.topic, m.payload) for m in messages], client_id="test-up-pub")
    deadline = time.monotonic() + 60
    while sum(landing_rows(up.home).values()) < expected_air:
        assert time.monotonic() < deadline, f"landed {sum(landing_rows(up.home).values())}"
        time.sleep(0.5)

    airflow = Airflow(state)
    run_id = airflow.trigger("citypipe_ingest", {})
    run = airflow.wait("citypipe_ingest", run_id)
    assert (run["run_type"], run["state"]) == ("manual", "success"), run
    tasks = airflow.tasks("citypipe_ingest", run_id)
    assert {t["state"] for t in tasks} == {"success"}, tasks
    # Queued by the scheduler and run by its LocalExecutor (dag.test() runs tasks in-process
    # and queues nothing).
    assert all(t["queued_when"] and t["executor"] in (None, "LocalExecutor") for t in tasks)
    assert all(t["pid"] for t in tasks)
    # The scheduler also started runs on the DAG's own */10 schedule, before ours.
    assert any(r["run_type"] == "scheduled" for r in airflow.runs("citypipe_ingest"))

    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    with db.reader(settings) as con:
        loaded = con.execute(
            "select count(*) from core.obs_air where observed_at > $start and observed_at <= $end",
            {"start": start, "end": start + timedelta(days=1)},
        ).fetchone()
    assert loaded == (expected_air,)

    kpi_run_id = airflow.trigger("citypipe_daily_kpis", {"date": day.isoformat()})
    kpi_run = airflow.wait("citypipe_daily_kpis", kpi_run_id)
    assert (kpi_run["run_type"], kpi_run["state"]) == ("manual", "success"), kpi_run
    with db.reader(settings) as con:
        pack = con.execute(
            "select kpi_id, dimension, value, coverage_pct from kpi.pack_values"
            " where local_date = $day order by all",
            {"day": day},
        ).fetchall()
    assert pack, f"no KPI pack for {day}"
    print(pack)


def test_sigterm_stops_every_part_and_frees_every_port(up: Up) -> None:
    state = up.state
    pgids = {int(p["pgid"]) for p in state["parts"].values()}
    ports = [int(p) for p in state["ports"].values()]
    assert len(pgids) >= 8 and session_processes(pgids), "nothing to stop: the check means nothing"
    assert not all(port_free(p) for p in ports)

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=90) == 0, up.output[-3000:]

    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(proc.pid) in pgids or os.getsid(proc.pid) in pgids:
                left.append(proc.info)
        except (ProcessLookupError, PermissionError):
            continue
    assert left == [], left
    assert [p for p in ports if not port_free(p)] == []
    assert "stopped in" in up.output
    assert not (up.home / "up" / "state.json").exists()
