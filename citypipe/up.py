"""``citypipe up``: the whole stack on one machine, on the embedded defaults (docs/up.md).

One supervisor process starts, each in its own session and process group (so a Ctrl-C in the
terminal reaches only the supervisor, which stops the rest in order):

- the broker: Mosquitto with ``deploy/mosquitto/mosquitto.conf`` when installed, else the
  in-process amqtt one (``simulator.broker``), unless ``CITYPIPE_MQTT_URL`` names a broker;
- ``citypipe ingest``, ``citypipe alerts`` and ``citypipe serve`` (an API key is generated into
  a 0600 file when none is configured);
- Airflow 3 with the LocalExecutor: ``airflow db migrate``, then the scheduler, DAG processor,
  triggerer and API server, running the repo's ``dags/`` on their own schedules; with
  ``--executor celery``, the CeleryExecutor instead: Airflow's metadata in a PostgreSQL database
  of its own (created on first use), Redis as Celery's broker, and two ``airflow celery worker``;
- with ``--simulate``, ``citypipe simulate --realtime``.

It waits until every part is healthy, prints the URLs and where each credential comes from,
and on SIGINT or SIGTERM stops everything: SIGTERM to each part, then SIGKILL to whatever is
left of a part's session after the grace period (Airflow's task processes take process groups
of their own, never a session of their own, so the session finds them). A file lock in the
data folder, inherited by every part, refuses a second ``citypipe up`` while any part lives.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from common.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

# Exit status when another `citypipe up` holds the data folder (EX_TEMPFAIL, as `citypipe run`).
EXIT_ALREADY_UP = 75
# Exit status when a part did not become healthy, or died.
EXIT_FAILED = 1
AIRFLOW_USER = "admin"
DUCKDB_POOL = "citypipe_duckdb"
DAG_IDS = ("citypipe_ingest", "citypipe_daily_kpis", "citypipe_maintenance")
# A finished simulator is no failure: the other parts go on.
MAY_EXIT = frozenset({"simulate", "airflow-pool"})
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# Two Celery workers on one machine, told apart by their node and host names.
CELERY_WORKERS = ("citypipe-worker-1", "citypipe-worker-2")


class AlreadyUp(RuntimeError):
    """Another ``citypipe up`` (or a part it started) holds the data folder's lock."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help="run the whole stack on this machine (broker, ingest, alerts, API, Airflow)",
        description=(__doc__ or "").splitlines()[0],
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="API and dashboard port (default 8080)")
    p.add_argument(
        "--airflow-port", type=int, default=8081, help="Airflow UI and API port (default 8081)"
    )
    p.add_argument(
        "--mqtt-port",
        type=int,
        default=1883,
        help="port of the local broker (default 1883; unused when CITYPIPE_MQTT_URL is set)",
    )
    p.add_argument(
        "--simulate", action="store_true", help="also run the simulator in real time (today on)"
    )
    p.add_argument(
        "--parallelism",
        type=int,
        default=4,
        help="Airflow task processes at once (default 4; each is a Python process)",
    )
    p.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="local",
        help="Airflow's executor: local (LocalExecutor, SQLite metadata; the default) or celery"
        " (CeleryExecutor, PostgreSQL metadata, Redis broker, two workers; docs/up.md)",
    )
    p.add_argument(
        "--worker-concurrency",
        type=int,
        default=2,
        help="task processes per Celery worker (default 2; with --executor celery)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="on stop, SIGKILL what is left after this long (default 15)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up when the stack is not healthy after this long (default 300)",
    )
    p.set_defaults(func=run)


# ------------------------------------------------------------------------- files and locks


@dataclass(frozen=True)
class UpPaths:
    """Where ``citypipe up`` keeps its files: ``{home}/up/``."""

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def api_keys(self) -> Path:
        return self.root / "api-keys"


def up_paths(settings: Settings) -> UpPaths:
    return UpPaths(settings.home / "up")


def take_lock(path: Path) -> int:
    """The held lock's descriptor; :class:`AlreadyUp` when another stack holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
        os.close(fd)
        raise AlreadyUp(
            f"citypipe up is already running on data folder {path.parent.parent} ({holder});"
            f" stop it first (Ctrl-C in its terminal, or kill -TERM its pid). Lock: {path}"
        ) from None
    since = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {since}".encode(), 0)
    return fd


def write_secret(path: Path, text: str) -> None:
    """A new file only the owner can read, written whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def api_key_source(settings: Settings, paths: UpPaths) -> tuple[dict[str, str], str]:
    """The serve process's key variables, and where the key comes from (never the key)."""
    if settings.api_keys is not None:
        where = (
            f"CITYPIPE_API_KEYS_FILE={settings.api_keys_file}"
            if settings.api_keys_file is not None and "CITYPIPE_API_KEYS" not in os.environ
            else "CITYPIPE_API_KEYS"
        )
        return {}, f"configured ({where})"
    if not paths.api_keys.exists():
        write_secret(paths.api_keys, secrets.token_urlsafe(24) + "\n")
        how = "generated"
    else:
        how = "generated earlier"
    return {"CITYPIPE_API_KEYS_FILE": str(paths.api_keys)}, f"in {paths.api_keys} ({how})"


def airflow_login(airflow_home: Path, env: dict[str, str]) -> tuple[str | None, Path, str]:
    """(user, passwords file, how): ours unless the environment configures the users."""
    configured = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    pw_file = (
        Path(configured)
        if configured
        else airflow_home / "simple_auth_manager_passwords.json.generated"
    )
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"):
        return None, pw_file, "users from AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{AIRFLOW_USER}:admin"
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(pw_file)
    passwords: dict[str, str] = {}
    if pw_file.exists():
        passwords = json.loads(pw_file.read_text(encoding="utf-8") or "{}")
    if AIRFLOW_USER in passwords:
        return AIRFLOW_USER, pw_file, "generated earlier"
    passwords[AIRFLOW_USER] = secrets.token_urlsafe(18)
    tmp = pw_file.with_name(pw_file.name + ".tmp")
    tmp.unlink(missing_ok=True)
    write_secret(tmp, json.dumps(passwords) + "\n")
    tmp.replace(pw_file)
    return AIRFLOW_USER, pw_file, "generated"


def read_airflow_password(pw_file: Path, user: str) -> str:
    return str(json.loads(pw_file.read_text(encoding="utf-8"))[user])


# ------------------------------------------------------------------------- the Celery executor


def airflow_database_name(settings: Settings) -> str:
    """Airflow's metadata database for ``--executor celery``: configured, else one per data
    folder (a second data folder on the same server gets a database of its own)."""
    if settings.airflow_database:
        return settings.airflow_database
    digest = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:10]
    return f"citypipe_airflow_{digest}"


def airflow_database_url(settings: Settings, database: str, hide_password: bool = False) -> str:
    """The psycopg 3 URL of that database, the password (if any) from the settings."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.airflow_postgres_url).set(database=database)
    if settings.airflow_postgres_password is not None:
        url = url.set(password=settings.airflow_postgres_password.get_secret_value())
    return url.render_as_string(hide_password=hide_password)


def celery_broker_url(settings: Settings, hide_password: bool = False) -> str:
    """Celery's broker URL, the password (if any) from the settings."""
    parts = urlsplit(settings.celery_broker_url)
    if settings.celery_broker_password is None or parts.hostname is None:
        return settings.celery_broker_url
    secret = (
        "***"
        if hide_password
        else quote(settings.celery_broker_password.get_secret_value(), safe="")
    )
    user = parts.username or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{secret}@{parts.hostname}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def create_airflow_database(settings: Settings, database: str) -> bool:
    """Create the metadata database unless it exists; True when it was created. CREATE DATABASE
    cannot run in a transaction, hence psycopg in autocommit (the `postgres` extra)."""
    import psycopg
    from psycopg.sql import SQL, Identifier
    from sqlalchemy.engine import make_url

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise ValueError(f"CITYPIPE_AIRFLOW_DATABASE {database!r}: use [a-z0-9_], 63 at most")
    url = make_url(settings.airflow_postgres_url).set(drivername="postgresql", database="postgres")
    password = settings.airflow_postgres_password
    conninfo = url.set(password=password.get_secret_value() if password else None)
    with psycopg.connect(
        conninfo.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
    ) as con:
        found = con.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if found:
            return False
        # DDL takes no bound names: a quoted identifier (and checked above).
        con.execute(SQL("create database {}").format(Identifier(database)))
    return True


def worker_hostname() -> str:
    """Airflow's ``core.hostname_callable`` in ``citypipe up``'s Celery workers: the worker's name
    and the machine's, so the task instances say which worker ran them."""
    from common.settings import get_settings

    name = get_settings().airflow_worker_name
    fqdn = socket.getfqdn()
    return f"{name}@{fqdn}" if name else fqdn


def celery_env(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """(Airflow's environment for the CeleryExecutor, what to print and record: no secrets).
    Creates the metadata database on first use; refuses when Redis does not answer."""
    import importlib.util

    missing = [
        extra
        for extra, module in (("celery", "airflow.providers.celery"), ("postgres", "psycopg"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise RuntimeError(
            f"--executor celery needs the {' and '.join(missing)} extra(s):"
            f" uv sync {' '.join('--extra ' + m for m in missing)}"
        )
    parts = urlsplit(settings.celery_broker_url)
    if parts.hostname and not _port_open(parts.hostname, parts.port or 6379):
        raise RuntimeError(
            f"Celery's broker {celery_broker_url(settings, hide_password=True)} does not answer;"
            " start Redis or set CITYPIPE_CELERY_BROKER_URL"
        )
    database = airflow_database_name(settings)
    created = create_airflow_database(settings, database)
    conn = airflow_database_url(settings, database)
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
        # psycopg 3 is the async driver too (Airflow would otherwise want asyncpg).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": conn,
        "AIRFLOW__CELERY__BROKER_URL": celery_broker_url(settings),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{conn}",
        # A queue per data folder: stacks sharing one Redis never take each other's tasks.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": database,
    }
    shown = {
        "airflow_database": database,
        "airflow_database_url": airflow_database_url(settings, database, hide_password=True),
        "airflow_database_created": "created" if created else "existing",
        "celery_broker_url": celery_broker_url(settings, hide_password=True),
        "celery_queue": database,
    }
    return env, shown


def worker_ready(log_path: Path, name: str) -> bool:
    """Celery logs "<node> ready." once the worker consumes its queue."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(rf"{re.escape(name)}@\S+ ready\.", text) is not None


# ------------------------------------------------------------------------- processes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def session_processes(sids: AbstractSet[int]) -> list[Any]:
    """Live processes (psutil) in any of these sessions: a part and everything it started that
    did not start a session of its own (Airflow's task processes take only a process group)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getsid(proc.pid) in sids:
                found.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return found


@dataclass
class Part:
    """One child process of the stack, leader of its own session and process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        return self.proc.pid


@dataclass
class Stack:
    settings: Settings
    paths: UpPaths
    lock_fd: int
    parts: list[Part] = field(default_factory=list)
    broker: Any = None  # simulator.broker.BrokerHandle
    stopping: threading.Event = field(default_factory=threading.Event)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Part:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.paths.logs / f"{name}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: the terminal's Ctrl-C is ours to handle, and the session
                # finds every process the part starts (see stop()).
                start_new_session=True,
                # The lock lasts while any part lives, even if this supervisor is SIGKILLed.
                pass_fds=(self.lock_fd,),
            )
        part = Part(name, proc, log_path)
        self.parts.append(part)
        log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
        return part

    def sids(self) -> set[int]:
        found = {p.pgid for p in self.parts}
        if self.broker is not None and self.broker.pid is not None:
            found.add(self.broker.pid)
        return found

    def stop(self, grace_s: float) -> list[str]:
        """SIGTERM to every part's group, the newest first; SIGKILL to every process left in
        the parts' sessions after ``grace_s``. Returns the names of the parts that were killed."""
        for part in reversed(self.parts):
            if part.proc.poll() is None:
                _signal_group(part.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        sids = {p.pgid for p in self.parts}
        while time.monotonic() < deadline:
            for part in self.parts:
                part.proc.poll()
            if not session_processes(sids):
                break
            time.sleep(0.2)
        killed = sorted({p.name for p in self.parts if p.proc.poll() is None})
        left = session_processes(sids)
        for proc in left:
            with contextlib.suppress(Exception):  # gone meanwhile
                proc.kill()
        for part in self.parts:
            _signal_group(part.pgid, signal.SIGKILL)
            try:
                part.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) survived SIGKILL", part.name, part.pgid)
        if left and not killed:
            killed = ["processes left behind by a stopped part"]
        if self.broker is not None:
            self.broker.stop()
        return killed

    def write_state(self, state: dict[str, Any]) -> None:
        """``{home}/up/state.json``: ports, URLs and process groups, for tools and tests."""
        state = {
            **state,
            "pid": os.getpid(),
            "parts": {p.name: {"pid": p.proc.pid, "pgid": p.pgid} for p in self.parts},
        }
        if self.broker is not None and self.broker.pid is not None:
            state["parts"]["broker"] = {"pid": self.broker.pid, "pgid": self.broker.pid}
        tmp = self.paths.state.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.paths.state)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# ------------------------------------------------------------------------- health


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _http_json(url: str) -> Any:
    import httpx

    try:
        r = httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return r.json()
    except ValueError:
        return None


def airflow_healthy(base: str) -> bool:
    """Airflow 3's /api/v2/monitor/health: the metadata database, scheduler, triggerer and
    DAG processor all "healthy" (each reports a heartbeat)."""
    body = _http_json(base + "/api/v2/monitor/health")
    if not isinstance(body, dict):
        return False
    names = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((body.get(n) or {}).get("status") == "healthy" for n in names)


def status_connected(path: Path, pid: int | None = None) -> bool:
    """A service's status file says it is connected (and was written by ``pid`` when given)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(body.get("connected")) and (pid is None or body.get("pid") in (None, pid))


def airflow_token(base: str, user: str, password: str) -> str | None:
    import httpx

    try:
        r = httpx.post(
            base + "/auth/token", json={"username": user, "password": password}, timeout=10
        )
    except httpx.HTTPError:
        return None
    if r.status_code not in (200, 201):
        return None
    return str(r.json()["access_token"])


def registered_dags(base: str, token: str) -> tuple[set[str], list[str]]:
    """The citypipe DAGs Airflow knows, and the DAG import errors it reports."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    try:
        dags = httpx.get(
            base + "/api/v2/dags", params={"tags": "citypipe"}, headers=headers, timeout=10
        )
        errors = httpx.get(base + "/api/v2/importErrors", headers=headers, timeout=10)
    except httpx.HTTPError:
        return set(), []
    ids = {d["dag_id"] for d in dags.json().get("dags", [])} if dags.status_code == 200 else set()
    errs = (
        [
            f"{e.get('filename')}: {e.get('stack_trace', '')[-500:]}"
            for e in errors.json().get("import_errors", [])
        ]
        if errors.status_code == 200
        else []
    )
    return ids, errs


# ------------------------------------------------------------------------- the command


def _citypipe(*words: str) -> list[str]:
    return [sys.executable, "-m", "citypipe.cli", *words]


def _airflow(*words: str) -> list[str]:
    exe = Path(sys.executable).parent / "airflow"
    return [str(exe), *words] if exe.exists() else [sys.executable, "-m", "airflow", *words]


def _check_ports(host: str, ports: dict[str, int]) -> str | None:
    busy = [f"{name} port {port}" for name, port in ports.items() if port_in_use(host, port)]
    if busy:
        return (
            f"{', '.join(busy)} already in use on {host}; choose others"
            " (--port, --airflow-port, --mqtt-port) or stop what listens there"
        )
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    t0 = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise
    paths = up_paths(settings)
    try:
        lock_fd = take_lock(paths.lock)
    except AlreadyUp as exc:
        print(f"citypipe up: {exc}", file=sys.stderr)
        return EXIT_ALREADY_UP
    stack = Stack(settings, paths, lock_fd)

    def on_signal(signum: int, frame: object) -> None:
        if not stack.stopping.is_set():
            print(f"\ncitypipe up: {signal.Signals(signum).name}, stopping...", file=sys.stderr)
        stack.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rc = EXIT_FAILED
    try:
        rc = _run(args, settings, stack, t0)
    except Exception as exc:  # reported, then everything started so far is stopped
        log.exception("citypipe up failed")
        print(f"citypipe up: {exc}", file=sys.stderr)
        rc = EXIT_FAILED
    finally:
        print("citypipe up: stopping all parts...", file=sys.stderr)
        t_stop = time.monotonic()
        killed = stack.stop(args.grace)
        note = f"; killed after {args.grace:g} s: {', '.join(killed)}" if killed else ""
        print(f"citypipe up: stopped in {time.monotonic() - t_stop:.1f} s{note}", file=sys.stderr)
        paths.state.unlink(missing_ok=True)
        os.close(lock_fd)
    return rc


def _run(args: argparse.Namespace, settings: Settings, stack: Stack, t0: float) -> int:
    from citypipe.rundag import airflow_env
    from steps import writer_pool_slots

    host = args.host
    ports = {"API": args.port, "Airflow": args.airflow_port}
    if not settings.mqtt_url:
        ports["MQTT"] = args.mqtt_port
    problem = _check_ports(host, ports)
    if problem:
        print(f"citypipe up: {problem}", file=sys.stderr)
        return EXIT_FAILED
    home = settings.home
    print(f"citypipe up: data folder {home}, logs in {stack.paths.logs}")

    # --- the broker
    if settings.mqtt_url:
        mqtt_url = settings.mqtt_url
        broker_line = f"{mqtt_url} (CITYPIPE_MQTT_URL)"
        mqtt_host, mqtt_port = None, None
    else:
        from simulator.broker import start_broker

        stack.broker = start_broker(home / "broker", port=args.mqtt_port)
        mqtt_url = stack.broker.url
        mqtt_host, mqtt_port = stack.broker.host, stack.broker.port
        broker_line = (
            f"{mqtt_url} (mosquitto with deploy/mosquitto/mosquitto.conf)"
            if stack.broker.kind == "mosquitto"
            else f"{mqtt_url} (embedded amqtt, MQTT 3.1.1: mosquitto is not installed)"
        )

    # --- the citypipe services
    base_env = dict(os.environ)
    base_env["CITYPIPE_HOME"] = str(home)
    base_env["CITYPIPE_MQTT_URL"] = mqtt_url
    base_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), base_env.get("PYTHONPATH", "")) if p
    )
    key_env, key_where = api_key_source(settings, stack.paths)
    ingest = stack.spawn("ingest", _citypipe("ingest", "--status-interval", "1"), base_env)
    stack.spawn("alerts", _citypipe("alerts", "--status-interval", "1"), base_env)
    stack.spawn(
        "serve",
        _citypipe("serve", "--host", host, "--port", str(args.port)),
        {**base_env, **key_env},
    )
    if args.simulate:
        stack.spawn(
            "simulate",
            _citypipe("simulate", "--realtime", "--days", "3650", "--no-progress"),
            base_env,
        )

    # --- Airflow: migrate first (under the lock `citypipe run` takes too), then its parts
    af_base = f"http://{host}:{args.airflow_port}"
    env = airflow_env(settings, verbose=True)
    env["CITYPIPE_MQTT_URL"] = mqtt_url
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            # Airflow starts `airflow` and task processes by name: the venv must be on PATH.
            "PATH": os.pathsep.join(p for p in (venv_bin, env.get("PATH", "")) if p),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(args.airflow_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": af_base,
            # Task processes call home here; its default is port 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af_base}/execution/",
            # The default 5 s is short on two busy cores with SQLite behind the API.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # The scheduler's and triggerer's log servers: free ports, so two stacks can coexist.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
    )
    executor = EXECUTORS[args.executor]
    shown: dict[str, str] = {}
    if executor == "CeleryExecutor":
        celery, shown = celery_env(settings)
        env.update(celery)
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    user, pw_file, pw_how = airflow_login(settings.airflow_home, env)
    db_file = settings.airflow_home / "airflow.db"
    with open(db_file.with_name(db_file.name + ".migrate.lock"), "a") as migrate_lock:
        fcntl.flock(migrate_lock, fcntl.LOCK_EX)
        migrate = stack.spawn("airflow-migrate", _airflow("db", "migrate"), env)
        while migrate.proc.poll() is None:
            if stack.stopping.wait(0.2):
                return 0
    if migrate.proc.returncode != 0:
        print(f"citypipe up: airflow db migrate failed; see {migrate.log}", file=sys.stderr)
        return EXIT_FAILED
    stack.parts.remove(migrate)
    log.info("airflow db migrate done after %.0f s", time.monotonic() - t0)
    slots = writer_pool_slots(settings)
    pool = stack.spawn(
        "airflow-pool",
        _airflow(
            "pools",
            "set",
            DUCKDB_POOL,
            str(slots),
            f"warehouse writers on {settings.warehouse_target.describe()}: {slots} at a time",
        ),
        env,
    )
    for name in ("scheduler", "dag-processor", "triggerer"):
        stack.spawn(f"airflow-{name}", _airflow(name), env)
    stack.spawn(
        "airflow-api-server",
        _airflow("api-server", "--host", host, "--port", str(args.airflow_port), "--workers", "1"),
        env,
    )
    workers: list[tuple[str, Part]] = []
    if executor == "CeleryExecutor":
        for name in CELERY_WORKERS:
            worker_env = {
                **env,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "citypipe.up.worker_hostname",
                "CITYPIPE_AIRFLOW_WORKER_NAME": name,
            }
            argv = _airflow(
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                str(args.worker_concurrency),
                # Both on one machine: no start-up sync or event chatter between them, and the
                # API server reads task logs from the shared folder (no log server per worker).
                "--without-mingle",
                "--without-gossip",
                "--skip-serve-logs",
            )
            workers.append(
                (name, stack.spawn(f"airflow-{name.removeprefix('citypipe-')}", argv, worker_env))
            )
    state = {
        "home": str(home),
        "mqtt_url": mqtt_url,
        "api_url": f"http://{host}:{args.port}",
        "airflow_url": af_base,
        "airflow_user": user,
        "airflow_passwords_file": str(pw_file),
        "executor": executor,
        **shown,
        "celery_workers": [name for name, _ in workers],
        "ports": {
            "api": args.port,
            "airflow": args.airflow_port,
            **({"mqtt": mqtt_port} if mqtt_port else {}),
            "airflow_worker_logs": int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
            "airflow_trigger_logs": int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]),
        },
        "healthy": False,
    }
    stack.write_state(state)

    # --- wait until every part is healthy
    checks: dict[str, Any] = {
        "API": lambda: _http_json(f"http://{host}:{args.port}/health") is not None,
        "ingest": lambda: status_connected(settings.status_dir / "ingest.json", ingest.proc.pid),
        "alerts": lambda: status_connected(settings.status_dir / "alerts.json"),
        "Airflow": lambda: airflow_healthy(af_base),
        "Airflow pool": lambda: pool.proc.poll() == 0,
    }
    for name, part in workers:
        checks[name] = lambda name=name, part=part: worker_ready(part.log, name)
    if mqtt_host is not None and mqtt_port is not None:
        checks["broker"] = lambda: _port_open(mqtt_host, mqtt_port)
    pending = dict(checks)
    # Status files of an earlier run would pass the alerts check at once.
    (settings.status_dir / "alerts.json").unlink(missing_ok=True)
    deadline = time.monotonic() + args.timeout
    while pending:
        if stack.stopping.is_set():
            return 0
        dead = _dead_part(stack)
        if dead is not None:
            return dead
        for name in [n for n, ok in pending.items() if ok()]:
            del pending[name]
            log.info("%s healthy after %.0f s", name, time.monotonic() - t0)
        if time.monotonic() > deadline:
            print(
                f"citypipe up: not healthy after {args.timeout:g} s: {', '.join(sorted(pending))};"
                f" see the logs in {stack.paths.logs}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        time.sleep(0.5)

    elapsed = time.monotonic() - t0
    stack.write_state({**state, "healthy": True, "up_in_s": round(elapsed, 1)})
    login = (
        f"user {user}, password in {pw_file} (JSON, key {user!r}; {pw_how})"
        if user
        else f"{pw_how}; passwords in {pw_file}"
    )
    print(
        "\n".join(
            [
                f"  broker       {broker_line}",
                f"  dashboard    http://{host}:{args.port}/",
                f"  API docs     http://{host}:{args.port}/docs",
                f"  API key      {key_where}",
                f"  Airflow UI   {af_base}/",
                f"  Airflow      {login}",
                f"  DAGs         {settings.dags_folder} (unpaused, on their own schedules)",
                f"  executor     {executor}"
                + (
                    f": workers {', '.join(n for n, _ in workers)} on queue"
                    f" {shown['celery_queue']}, broker {shown['celery_broker_url']}"
                    if workers
                    else " (SQLite metadata in the data folder)"
                ),
                *(
                    [
                        f"  metadata     {shown['airflow_database_url']}"
                        f" ({shown['airflow_database_created']})"
                    ]
                    if shown
                    else []
                ),
                *(["  simulator    real time from today 00:00"] if args.simulate else []),
                f"up in {elapsed:.0f} s; Ctrl-C stops everything",
            ]
        ),
        flush=True,
    )
    # Then, while running: say once which DAGs Airflow has registered, or why not.
    dags_said = user is None  # no login of ours to ask with
    next_look = time.monotonic()
    while not stack.stopping.wait(1.0):
        dead = _dead_part(stack)
        if dead is not None:
            return dead
        if not dags_said and time.monotonic() >= next_look and user is not None:
            next_look = time.monotonic() + 5
            dags_said = _report_dags(af_base, user, read_airflow_password(pw_file, user))
    return 0


def _report_dags(base: str, user: str, password: str) -> bool:
    """Print the registered citypipe DAGs, or the import errors; False while neither is known."""
    token = airflow_token(base, user, password)
    if token is None:
        return False
    dags, errors = registered_dags(base, token)
    if errors:
        print("citypipe up: DAG import errors:\n" + "\n".join(errors), file=sys.stderr, flush=True)
        return True
    if not dags.issuperset(DAG_IDS):
        return False
    print(f"citypipe up: DAGs registered: {', '.join(sorted(dags))}", flush=True)
    return True


def _dead_part(stack: Stack) -> int | None:
    """EXIT_FAILED when a part that should run has exited (reported), else None."""
    for part in stack.parts:
        rc = part.proc.poll()
        if rc is None or (part.name in MAY_EXIT and rc == 0):
            continue
        tail = part.log.read_text(encoding="utf-8", errors="replace")[-1500:]
        print(
            f"citypipe up: {part.name} exited with status {rc}; log {part.log}:\n{tail}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return None
