"""`citypipe up --executor celery` for real (issue 12 item 3): Airflow's CeleryExecutor with the
machine's Redis as broker and its PostgreSQL for Airflow's metadata (a database of this test's
own, dropped at the end), two Celery workers.

As test_up.py: readings published with a real MQTT client reach the warehouse and the KPI pack
through DAG runs Airflow's own scheduler queued; here the task instances were executed by the
Celery workers (their host names and the stack's queue say so), and SIGTERM leaves no process
and no listening port behind. Without Redis or PostgreSQL the tests skip with the reason, unless
CITYPIPE_REQUIRE_REDIS=1 / CITYPIPE_REQUIRE_POSTGRES=1 (.ci/run sets both): then they fail.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit

import psutil
import pytest
from test_up import (
    STATION,
    Airflow,
    Up,
    _wait_for_run,
    port_free,
    running_stack,
)

from citypipe.up import CELERY_WORKERS, session_processes
from warehouse import db

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("CITYPIPE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PG_SERVER = os.environ.get(
    "CITYPIPE_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432"
)


def _admin_conninfo() -> str:
    return PG_SERVER.replace("+psycopg", "", 1) + "/postgres"


def _require(service: str, variable: str, problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {service} is unreachable: {problem}")
    pytest.skip(f"no {service} ({problem}); CI requires it ({variable}=1)")


def _redis_problem() -> str | None:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 6379), timeout=3) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        return f"{REDIS_URL}: {exc}"
    return None if reply.startswith(b"+PONG") else f"{REDIS_URL} answered {reply!r}"


def _postgres_problem() -> str | None:
    import psycopg

    try:
        psycopg.connect(_admin_conninfo(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return f"{_admin_conninfo()}: {exc}"
    return None


def _database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(_admin_conninfo(), autocommit=True) as con:
        row = con.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
    return row is not None


def _drop_database(name: str) -> None:
    import psycopg
    from psycopg.sql import SQL, Identifier

    with psycopg.connect(_admin_conninfo(), autocommit=True) as con:
        con.execute(SQL("drop database if exists {} with (force)").format(Identifier(name)))


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """The name of this module's Airflow metadata database; `citypipe up` creates it."""
    _require("Redis", "CITYPIPE_REQUIRE_REDIS", _redis_problem())
    _require("PostgreSQL", "CITYPIPE_REQUIRE_POSTGRES", _postgres_problem())
    name = f"citypipe_airflow_test_{os.getpid()}"
    _drop_database(name)
    try:
        yield name
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Up]:
    yield from running_stack(
        tmp_path_factory.mktemp("up-celery"),
        {
            "CITYPIPE_AIRFLOW_POSTGRES_URL": PG_SERVER,
            "CITYPIPE_AIRFLOW_DATABASE": database,
            "CITYPIPE_CELERY_BROKER_URL": REDIS_URL,
        },
        ("--executor", "celery"),
    )


def test_celery_workers_run_the_scheduled_pipeline_to_the_kpi_pack(up: Up, database: str) -> None:
    state = up.state
    assert state["executor"] == "CeleryExecutor"
    assert state["airflow_database"] == database and _database_exists(database)
    assert state["celery_queue"] == database
    assert state["celery_workers"] == list(CELERY_WORKERS)
    # Both workers consume the stack's queue (Celery logs "<node>@<host> ready.").
    for name in CELERY_WORKERS:
        part = state["parts"][f"airflow-{name.removeprefix('citypipe-')}"]
        assert psutil.pid_exists(part["pid"]), name
        worker_log = up.home / "up" / "logs" / f"airflow-{name.removeprefix('citypipe-')}.log"
        assert f"{name}@" in worker_log.read_text(errors="replace")
    assert "executor     CeleryExecutor" in up.output
    assert f"/{database} (created)" in up.output

    settings = up.settings()
    assert up.readings is not None, "the fixture published nothing"
    day = up.readings.day
    airflow = Airflow(state)
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

    kpi_run = airflow.wait(
        "citypipe_daily_kpis", airflow.trigger("citypipe_daily_kpis", {"date": day.isoformat()})
    )
    assert (kpi_run["run_type"], kpi_run["state"]) == ("manual", "success"), kpi_run
    tasks += airflow.tasks("citypipe_daily_kpis", kpi_run["dag_run_id"])
    # Queued by the scheduler on the stack's Celery queue and run by a worker, which names
    # itself as the task instance's host (LocalExecutor tasks carry the machine's name only).
    assert all(t["queued_when"] and t["queue"] == database and t["pid"] for t in tasks), tasks
    hosts = {str(t["hostname"]).split("@")[0] for t in tasks if t["state"] == "success"}
    assert hosts and hosts <= set(CELERY_WORKERS), hosts

    with db.reader(settings) as con:
        loaded = con.execute("select count(*) from core.obs_air").fetchone()
        pack = con.execute(
            "select dimension, coverage_pct from kpi.pack_values"
            " where local_date = $day and kpi_id = 'air.station'",
            {"day": day},
        ).fetchall()
    assert loaded == (up.readings.air_readings,)
    coverage = dict(pack)
    assert coverage.get(STATION, 0) > 0, pack
    assert all(c == 0 for site, c in coverage.items() if site != STATION), pack


def test_sigterm_stops_the_workers_too_and_frees_every_port(up: Up, database: str) -> None:
    state = up.state
    pgids = {int(p["pgid"]) for p in state["parts"].values()}
    ports = [int(p) for p in state["ports"].values()]
    workers = [f"airflow-{n.removeprefix('citypipe-')}" for n in CELERY_WORKERS]
    assert all(psutil.pid_exists(state["parts"][w]["pid"]) for w in workers)
    assert session_processes(pgids), "nothing to stop: the check means nothing"

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=90) == 0, up.output[-3000:]

    left = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(proc.pid) in pgids or os.getsid(proc.pid) in pgids:
                left.append(proc.info)
        except (ProcessLookupError, PermissionError):
            continue
    assert left == [], left
    assert [p for p in ports if not port_free(p)] == []
    assert not (up.home / "up" / "state.json").exists()
    # Nothing holds the metadata database any more: it drops without force (the fixture's own
    # drop at the end then has nothing left to do).
    import psycopg
    from psycopg.sql import SQL, Identifier

    with psycopg.connect(_admin_conninfo(), autocommit=True) as con:
        con.execute(SQL("drop database {}").format(Identifier(database)))
    assert not _database_exists(database)
