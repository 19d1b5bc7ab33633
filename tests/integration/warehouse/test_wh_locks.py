"""The warehouse lock between real processes: readers share, writers exclude, nobody waits silently.

A helper process holds a real lock (and a real DuckDB connection) until told to stop; the
``citypipe kpis`` command runs as a real subprocess against the same data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import REPO_ROOT, Settings
from transforms.cli import EXIT_LOCK_TIMEOUT
from warehouse import db

# The lock orders the single DuckDB file's writers and readers; a lake takes none
# (test_wh_lake_concurrency.py covers readers and writers there).
pytestmark = pytest.mark.backends("file")

HOLD = r"""
import sys, time
from pathlib import Path
from common.settings import get_settings
from warehouse import db
kind, release = sys.argv[1], Path(sys.argv[2])
s = get_settings()
cm = db.writer(s) if kind == "writer" else db.reader(s)
with cm as con:
    con.execute("select 1").fetchall()
    print("HOLDING", flush=True)
    while not release.exists():
        time.sleep(0.05)
"""


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CITYPIPE_HOME": str(settings.home), **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture
def warehouse(settings: Settings) -> Settings:
    with db.writer(settings):  # a migrated warehouse file, lock released
        pass
    return settings


class Holder:
    """A process holding the warehouse lock (and a DuckDB connection) until ``release()``."""

    def __init__(self, settings: Settings, kind: str, tmp: Path) -> None:
        self.release_file = tmp / f"release-{kind}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, kind, str(self.release_file)],
            env=env_for(settings),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "HOLDING", f"holder did not start ({self.proc.poll()})"

    def release(self) -> None:
        self.release_file.touch()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def hold(warehouse: Settings, tmp_path: Path) -> Iterator[object]:
    holders: list[Holder] = []

    def start(kind: str) -> Holder:
        h = Holder(warehouse, kind, tmp_path)
        holders.append(h)
        return h

    yield start
    for h in holders:
        if h.proc.poll() is None:
            h.release_file.touch()
            try:
                h.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                h.proc.kill()


def kpis(settings: Settings, timeout_s: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "citypipe.cli", "kpis", "--date", "2026-11-28"]
    return subprocess.run(
        cmd, env=env_for(settings, **env), capture_output=True, text=True, timeout=timeout_s
    )


def test_readers_do_not_block_each_other(warehouse: Settings, hold) -> None:  # type: ignore[no-untyped-def]
    reader = hold("reader")
    # A second reader process (real read-only DuckDB open) while the first holds its connection:
    # it never waited (a wait is logged after LOCK_NOTICE_S) and got its answer.
    proc = kpis(warehouse, timeout_s=60, CITYPIPE_LOCK_TIMEOUT_S="30")
    assert proc.returncode == 1 and "no KPIs computed" in proc.stderr, proc.stderr[-2000:]
    assert "waiting" not in proc.stderr
    reader.release()


def test_reader_names_the_writer_then_gives_up(warehouse: Settings, hold) -> None:  # type: ignore[no-untyped-def]
    writer = hold("writer")
    t0 = time.monotonic()
    proc = kpis(warehouse, timeout_s=60, CITYPIPE_LOCK_TIMEOUT_S="5")
    elapsed = time.monotonic() - t0
    assert proc.returncode == EXIT_LOCK_TIMEOUT, proc.stderr[-2000:]
    assert 5 <= elapsed < 30
    # After ~3 s it said whom it waits for: the writer's pid and command line.
    waiting = [ln for ln in proc.stderr.splitlines() if "waiting" in ln and "WARNING" in ln]
    assert waiting, proc.stderr
    assert f"writer pid {writer.proc.pid}" in waiting[0] and "-c" in waiting[0]
    assert "gave up after" in proc.stderr and "CITYPIPE_LOCK_TIMEOUT_S" in proc.stderr
    assert "Traceback" not in proc.stderr
    writer.release()
    # The writer left no stale record, and the reader now gets through at once.
    assert db.lock_path(warehouse).read_text() == ""
    assert kpis(warehouse, timeout_s=30).returncode == 1


def test_reader_waits_for_a_short_writer_and_says_so(warehouse: Settings, hold) -> None:  # type: ignore[no-untyped-def]
    writer = hold("writer")
    cmd = [sys.executable, "-m", "citypipe.cli", "kpis", "--date", "2026-11-28"]
    proc = subprocess.Popen(
        cmd, env=env_for(warehouse), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    # Its first words are the notice (after LOCK_NOTICE_S of waiting), not a result.
    first = proc.stderr.readline()
    assert "WARNING" in first and "waiting" in first, first
    assert f"writer pid {writer.proc.pid}" in first
    assert proc.poll() is None, "the reader must wait while the writer holds the lock"
    writer.release()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "no KPIs computed" in err, err[-2000:]
    assert "taken after" in err


def test_writers_exclude_readers_and_each_other(warehouse: Settings, hold) -> None:  # type: ignore[no-untyped-def]
    reader = hold("reader")
    with pytest.raises(db.LockTimeout, match="held by readers"), db.exclusive_lock(warehouse, 1):
        pass
    reader.release()
    writer = hold("writer")
    held_by = f"writer pid {writer.proc.pid}"
    with pytest.raises(db.LockTimeout, match=held_by), db.exclusive_lock(warehouse, 1):
        pass
    with pytest.raises(db.LockTimeout), db.shared_lock(warehouse, timeout_s=1):
        pass
    writer.release()
    with db.exclusive_lock(warehouse, timeout_s=1) as path:
        assert f"writer pid {os.getpid()}" in path.read_text()
    with db.shared_lock(warehouse, timeout_s=1):
        pass
