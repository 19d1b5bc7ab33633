"""An MQTT broker for the demo, tests and benchmarks: Mosquitto if installed, else in-process amqtt.

``start_broker(data_dir)`` returns a ``BrokerHandle`` (also a context manager). Mosquitto runs as a
child process with the project's ``deploy/mosquitto/mosquitto.conf`` (the queue and in-flight limits
that make QoS 1 lossless) plus the overrides of ``mosquitto.test.conf``: loopback, a free port, a
private data dir. Without the binary, an amqtt broker (MQTT 3.1.1 only) runs in a background thread
with its own asyncio loop; amqtt forgets the sessions of anonymous clients, so it requires a user
name (any password) and the handle's ``url`` carries one.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.settings import REPO_ROOT

log = logging.getLogger(__name__)

CONF_DIR = REPO_ROOT / "deploy" / "mosquitto"
# Deployment lines the embedded broker replaces (listener, storage, auth, logging, pid file).
_REPLACED_DIRECTIVES = frozenset(
    {
        "listener",
        "port",
        "bind_address",
        "persistence_location",
        "allow_anonymous",
        "password_file",
        "acl_file",
        "log_dest",
        "pid_file",
        "include_dir",
        "user",
    }
)
AMQTT_USER = "citypipe"


class BrokerUnavailable(RuntimeError):
    """Neither Mosquitto nor amqtt could be started."""


@dataclass
class BrokerHandle:
    kind: Literal["mosquitto", "amqtt"]
    host: str
    port: int
    data_dir: Path
    # Set for amqtt: it keeps persistent sessions only for authenticated (named) clients.
    username: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # How this Mosquitto was started, for ``start_again`` (same binary, port, dir and overrides).
    _binary: str | None = field(default=None, repr=False)
    _extra: dict[str, str] | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _broker: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            self._proc = None
        if self._loop is not None and self._broker is not None:
            loop = self._loop
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(timeout=10)
            except Exception:  # best effort: the loop is stopped below anyway
                log.warning("amqtt broker shutdown failed", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop = None
            self._broker = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start_again(self) -> None:
        """Start a stopped Mosquitto again on the same port with the same data dir and config.

        With persistence on (the project's config), ``stop()`` (SIGTERM) made Mosquitto write its
        persistence file; the new process reads it back: persistent sessions, their
        subscriptions and their queued QoS 1 messages survive the restart (the fault tests).
        """
        if self.kind != "mosquitto" or self._binary is None:
            raise BrokerUnavailable("only a Mosquitto started by start_broker can be started again")
        if self.running:
            raise RuntimeError(f"mosquitto already runs on port {self.port}")
        again = _start_mosquitto(self._binary, self.data_dir, self.port, self._extra)
        self._proc, again._proc = again._proc, None

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout_s: float, alive: Any = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_config(port: int, data_dir: Path, extra: dict[str, str] | None = None) -> str:
    """The deployment config with the listener, storage and auth lines swapped for local ones."""
    kept: list[str] = []
    for line in (CONF_DIR / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            name = words[0]
            if name in _REPLACED_DIRECTIVES or (extra and name in extra):
                continue
        kept.append(line)
    overrides = (CONF_DIR / "mosquitto.test.conf").read_text(encoding="utf-8")
    kept.append(overrides.replace("{port}", str(port)).replace("{data_dir}", str(data_dir)))
    if os.geteuid() == 0:
        # Mosquitto run as root drops to user "mosquitto", which cannot write our data dir.
        kept.append(f"user {getpass.getuser()}")
    for name, value in (extra or {}).items():
        kept.append(f"{name} {value}")
    return "\n".join(kept) + "\n"


def _start_mosquitto(
    binary: str, data_dir: Path, port: int | None, extra: dict[str, str] | None
) -> BrokerHandle:
    for _attempt in range(3):
        p = port or free_port()
        conf = data_dir / "mosquitto.conf"
        conf.write_text(mosquitto_config(p, data_dir, extra), encoding="utf-8")
        stderr = open(data_dir / "mosquitto.stderr", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # a Ctrl-C in the terminal is for us, not the broker
        )
        stderr.close()
        if _wait_for_port(p, 10.0, alive=lambda proc=proc: proc.poll() is None):
            log.info("mosquitto (pid %d) listening on 127.0.0.1:%d", proc.pid, p)
            return BrokerHandle(
                "mosquitto", "127.0.0.1", p, data_dir, _proc=proc, _binary=binary, _extra=extra
            )
        proc.kill()
        proc.wait()
        if port is not None:
            break  # the caller's port is taken: retrying the same port is pointless
    log_text = (
        (data_dir / "mosquitto.log").read_text(errors="replace")[-2000:]
        if (data_dir / "mosquitto.log").exists()
        else ""
    )
    raise BrokerUnavailable(f"mosquitto did not start; log tail:\n{log_text}")


def _start_amqtt(data_dir: Path, port: int | None) -> BrokerHandle:
    from amqtt.broker import Broker

    # amqtt and its state machine library log every connection at INFO: keep the demo's output readable.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    p = port or free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{p}"}},
        # Anonymous sessions are not kept by amqtt: require a user name so the ingest session persists.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}},
    }
    loop = asyncio.new_event_loop()
    broker = Broker(config, loop=loop)
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(broker.start())
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        # amqtt leaves background tasks behind after shutdown(): cancel and await them so the
        # interpreter does not report "Task was destroyed but it is pending" at exit.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, name="amqtt-broker", daemon=True)
    thread.start()
    started.wait(timeout=15)
    if failure or not _wait_for_port(p, 10.0):
        raise BrokerUnavailable(f"amqtt did not start: {failure[0] if failure else 'timeout'}")
    log.info("amqtt broker listening on 127.0.0.1:%d (MQTT 3.1.1)", p)
    return BrokerHandle(
        "amqtt",
        "127.0.0.1",
        p,
        data_dir,
        username=AMQTT_USER,
        _loop=loop,
        _broker=broker,
        _thread=thread,
    )


def start_broker(
    data_dir: Path,
    port: int | None = None,
    *,
    prefer: Literal["auto", "mosquitto", "amqtt"] = "auto",
    extra_config: dict[str, str] | None = None,
) -> BrokerHandle:
    """Start a local broker on 127.0.0.1 (a free port unless given) keeping its files in ``data_dir``.

    ``prefer="amqtt"`` forces the in-process fallback (tests cover that path too);
    ``extra_config`` adds or replaces Mosquitto directives (e.g. ``{"persistence": "false"}``).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = find_mosquitto() if prefer != "amqtt" else None
    if binary is not None:
        return _start_mosquitto(binary, data_dir, port, extra_config)
    if prefer == "mosquitto":
        raise BrokerUnavailable("mosquitto binary not found on PATH or in /usr/sbin")
    return _start_amqtt(data_dir, port)
