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
from datetime import UTC, date, datetime, timedelta
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
# The air station whose readings the test publishes.
STATION = "WS-AIR-01"
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


@dataclass(frozen=True)
class Readings:
    """What the fixture published to the stack's broker, and when it had all landed."""

    day: date
    air_readings: int
    landed_at: datetime


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    home: Path
    log: Path
    env: dict[str, str]
    up_after_s: float
    # Every part's process group and session, known once the stack is up (for teardown).
    pgids: frozenset[int] = frozenset()
    readings: Readings | None = None

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
    yield from running_stack(tmp_path_factory.mktemp("up"))


def running_stack(
    root: Path, extra_env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[Up]:
    """`citypipe up` under ``root``, until it says it is up (readings published as soon as its
    ingest is connected); stopped for good afterwards. The body of the stack fixtures."""
    home = root / "home"
    # Nothing of a developer's citypipe or Airflow configuration leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CITYPIPE_", "AIRFLOW_", "AIRFLOW__"))
    }
    env["CITYPIPE_HOME"] = str(home)
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    log = root / "up.log"
    cmd = [*up_command(*free_ports(3)), *extra_args, "--timeout", str(START_TIMEOUT_S)]
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack = Up(proc, home, log, env, 0.0)
    try:
        while not UP_LINE.search(stack.output):
            if stack.readings is None and _ingest_connected(stack):
                # Early, while Airflow starts: the scheduler's first ingest run can load them.
                stack.readings = publish_readings(stack)
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


def _ingest_connected(stack: Up) -> bool:
    try:
        status = json.loads((stack.home / "status" / "ingest.json").read_text())
        stack.state  # noqa: B018 - written once the parts run: it has the broker's URL
    except (OSError, ValueError):
        return False
    return bool(status.get("connected"))


def publish_readings(stack: Up) -> Readings:
    """A simulated stretch of yesterday's air readings, no faults, published at QoS 1 with a
    real MQTT client; returns once the ingest service has landed every one."""
    settings = stack.settings()
    day = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
    catalogue = load_catalogue(settings.reference_dir, settings.city)
    sim = generate(catalogue, day, 1, seed=5, faults="none", feeds=["air"])
    # Two hours of one station, 00:00 to 01:59: its hour ending 01:00 is complete (valid).
    messages = list(itertools.islice((m for m in sim if m.topic.endswith("/" + STATION)), 120))
    expected = sum(m.outcomes.count("accept") for m in messages)
    assert expected >= 100
    addr = parse_broker_url(stack.state["mqtt_url"])
    broker = BrokerHandle("mosquitto", addr.host, addr.port, stack.home, username=addr.username)
    publish(broker, [(m.topic, m.payload) for m in messages], client_id="test-up-pub")
    deadline = time.monotonic() + 60
    while (landed := sum(landing_rows(stack.home).values())) < expected:
        assert time.monotonic() < deadline, f"landed {landed} of {expected} readings"
        time.sleep(0.2)
    return Readings(day, expected, datetime.now(UTC))


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
    assert up.readings is not None, "the fixture published nothing"
    day = up.readings.day
    airflow = Airflow(up.state)

    # The scheduler starts the latest */10 interval of citypipe_ingest as soon as the DAG is
    # registered. When its discover task started after the readings had landed, that run loaded
    # them; otherwise (the DAG was parsed first) a run triggered through the REST API does.
    first = _wait_for_run(airflow, "citypipe_ingest", "scheduled")
    assert first["state"] == "success", first
    discover = next(
        t
        for t in airflow.tasks("citypipe_ingest", first["dag_run_id"])
        if t["task_id"] == "discover"
    )
    if datetime.fromisoformat(discover["start_date"]) > up.readings.landed_at:
        run = first
    else:
        run = airflow.wait("citypipe_ingest", airflow.trigger("citypipe_ingest", {}))
        assert (run["run_type"], run["state"]) == ("manual", "success"), run
    tasks = airflow.tasks("citypipe_ingest", run["dag_run_id"])
    assert {t["state"] for t in tasks} == {"success"}, tasks
    # Queued by the scheduler and run by its LocalExecutor, each in a process of its own
    # (dag.test() runs tasks in its own process and queues nothing).
    assert all(t["queued_when"] and t["executor"] in (None, "LocalExecutor") for t in tasks)
    assert all(t["pid"] for t in tasks)

    with db.reader(settings) as con:  # the stack has loaded nothing else
        loaded = con.execute("select count(*) from core.obs_air").fetchone()
    assert loaded == (up.readings.air_readings,)

    kpi_run_id = airflow.trigger("citypipe_daily_kpis", {"date": day.isoformat()})
    kpi_run = airflow.wait("citypipe_daily_kpis", kpi_run_id)
    assert (kpi_run["run_type"], kpi_run["state"]) == ("manual", "success"), kpi_run
    with db.reader(settings) as con:
        pack = con.execute(
            "select dimension, coverage_pct from kpi.pack_values"
            " where local_date = $day and kpi_id = 'air.station'",
            {"day": day},
        ).fetchall()
    coverage = dict(pack)
    # Computed from the published readings: their station has data, the others none.
    assert coverage.get(STATION, 0) > 0, pack
    assert all(c == 0 for site, c in coverage.items() if site != STATION), pack


def _wait_for_run(airflow: Airflow, dag_id: str, run_type: str) -> dict[str, Any]:
    """The first run of that type, once finished."""
    deadline = time.monotonic() + DAG_RUN_TIMEOUT_S
    while True:
        runs = sorted(
            (r for r in airflow.runs(dag_id) if r["run_type"] == run_type),
            key=lambda r: r["queued_at"] or "",
        )
        if runs:
            return airflow.wait(dag_id, runs[0]["dag_run_id"])
        assert time.monotonic() < deadline, f"no {run_type} run of {dag_id}"
        time.sleep(2)


def test_sigterm_stops_every_part_and_frees_every_port(up: Up) -> None:
    state = up.state
    pgids = {int(p["pgid"]) for p in state["parts"].values()}
    ports = [int(p) for p in state["ports"].values()]
    assert len(pgids) >= 8 and session_processes(pgids), "nothing to stop: the check means nothing"
    assert not all(port_free(p) for p in ports)

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=90) == 0, up.output[-3000:]

    left = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue  # dead, waiting for its new parent to reap it
        try:
            if os.getpgid(proc.pid) in pgids or os.getsid(proc.pid) in pgids:
                left.append(proc.info)
        except (ProcessLookupError, PermissionError):
            continue
    assert left == [], left
    assert [p for p in ports if not port_free(p)] == []
    assert "stopped in" in up.output
    assert not (up.home / "up" / "state.json").exists()
