"""`citypipe ingest` as a real subprocess, for the process and reliability tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from common.settings import REPO_ROOT


class Ingest:
    """One `citypipe ingest` subprocess and its status file."""

    def __init__(
        self, home: Path, url: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        """``env`` overrides the test defaults, e.g. the production flush sizes
        ({"CITYPIPE_FLUSH_MAX_AGE_S": "1", "CITYPIPE_FLUSH_MAX_RECORDS": "20000"})."""
        self.status = home / "status" / "ingest.json"
        self.status.unlink(missing_ok=True)
        env = {
            **os.environ,
            "CITYPIPE_HOME": str(home),
            "CITYPIPE_MQTT_URL": url,
            # Small, quick flushes keep the tests short; production flushes less often.
            "CITYPIPE_FLUSH_MAX_AGE_S": "0.5",
            "CITYPIPE_FLUSH_MAX_RECORDS": "5000",
            **(env or {}),
        }
        self.log = open(home / "ingest.log", "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "ingest", "--status-interval", "0.2", *extra],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def read_status(self) -> dict:
        try:
            return json.loads(self.status.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_for(self, predicate, timeout: float = 60) -> dict:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.read_status()
            if st and predicate(st):
                return st
            if self.proc.poll() is not None:
                return self.read_status()
            time.sleep(0.05)
        raise AssertionError(f"timed out; status {self.read_status()}")

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def writer_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]


def gone(pid: int, timeout: float = 10) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
