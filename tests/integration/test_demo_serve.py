"""`citypipe demo` ends by serving: it prints the dashboard's, the report's and the API docs' URLs
and where the API key is (a 0600 file, never the key itself), serves until Ctrl-C, and then
exits 0 leaving no process behind. Real subprocesses, a real warehouse, real HTTP."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import psutil
import pytest
from support.serving_helpers import build, serve_env

from common.settings import REPO_ROOT, Settings

DAY = date(2026, 7, 14)
URL = re.compile(r"^  (dashboard|data quality|API docs): +(http://\S+)", re.M)
KEY = re.compile(r"^  API key: +in (\S+?)(?: \([^)]*\))?;", re.M)


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    out: Path
    urls: dict[str, str]
    key_file: Path

    def text(self) -> str:
        return self.out.read_text()


def demo_env(home: Path) -> dict[str, str]:
    env = serve_env(keys=None)  # no CITYPIPE_API_KEYS*: the demo makes its own key
    env["CITYPIPE_HOME"] = str(home)
    return env


@contextmanager
def demo(
    home: Path, *args: str, timeout_s: float = 60, env: dict[str, str] | None = None
) -> Iterator[Demo]:
    """`citypipe demo ARGS --port 0` until it prints where it serves; killed if still alive."""
    out = home.parent / f"demo-{time.monotonic_ns()}.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citypipe.cli", "demo", *args, "--port", "0"],
            cwd=REPO_ROOT,
            env={**demo_env(home), **(env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not KEY.search(out.read_text()):
            assert proc.poll() is None, f"demo exited {proc.returncode}:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"demo did not serve:\n{out.read_text()[-3000:]}"
            time.sleep(0.2)
        text = out.read_text()
        urls = dict(URL.findall(text))
        key = KEY.search(text)
        assert key is not None
        yield Demo(proc, out, urls, Path(key.group(1)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_health(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the demo's server did not answer /health"
        time.sleep(0.2)


def check_serving_and_interrupt(d: Demo) -> str:
    """The printed URLs answer, the key file works and is private; Ctrl-C ends it cleanly."""
    base = d.urls["dashboard"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base), d.urls
    assert d.urls["data quality"] == base + "quality"
    assert d.urls["API docs"] == base + "docs"
    wait_health(base)

    assert stat.S_IMODE(d.key_file.stat().st_mode) == 0o600
    keys = [ln for ln in d.key_file.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(keys) == 1 and len(keys[0]) >= 16
    assert keys[0] not in d.text(), "the key itself must never be printed"
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("api/v1/pack/latest").status_code == 401
        latest = http.get("api/v1/pack/latest", headers={"X-API-Key": keys[0]})
        assert latest.status_code == 200, latest.text
        assert latest.json()["count"] > 0
        assert http.get("openapi.json", headers={"X-API-Key": keys[0]}).status_code == 200

    family = [d.proc.pid, *(c.pid for c in psutil.Process(d.proc.pid).children(recursive=True))]
    d.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert d.proc.wait(timeout=30) == 0, d.text()[-3000:]
    time.sleep(0.2)
    left = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert left == [], f"processes left behind: {left}"
    text = d.text()
    assert "Traceback" not in text, text[-3000:]
    assert text.rstrip().endswith("citypipe demo: stopped serving")
    return text


def test_serve_only_serves_an_earlier_run_until_ctrl_c(settings: Settings, tmp_path: Path) -> None:
    build(settings, DAY)  # the real load and KPI run, as the demo's DAGs leave the warehouse
    with demo(settings.home, "--serve-only") as d:
        check_serving_and_interrupt(d)
        key = d.key_file.read_text()

    # A second run reuses the key (a client keeps working); SIGTERM also ends it with 0.
    with demo(settings.home, "--serve-only") as d:
        assert d.key_file.read_text() == key
        wait_health(d.urls["dashboard"])
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0, d.text()[-3000:]

    # Keys configured in the environment win: the demo names where they are, never shows them.
    keys = tmp_path / "keys"
    keys.write_text("from-the-environment-0123456789\n")
    with demo(settings.home, "--serve-only", env={"CITYPIPE_API_KEYS_FILE": str(keys)}) as d:
        assert d.key_file == keys
        assert f"in {keys} (CITYPIPE_API_KEYS_FILE)" in d.text()
        assert "from-the-environment" not in d.text()
        wait_health(d.urls["dashboard"])
        headers = {"X-API-Key": "from-the-environment-0123456789"}
        assert httpx.get(d.urls["dashboard"] + "api/v1/kpis", headers=headers).status_code == 200
        headers = {"X-API-Key": key.splitlines()[-1]}  # the demo's own key is not one now
        assert httpx.get(d.urls["dashboard"] + "api/v1/kpis", headers=headers).status_code == 401
        d.proc.send_signal(signal.SIGINT)
        assert d.proc.wait(timeout=30) == 0


def test_serve_only_without_a_warehouse_says_so(settings: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "citypipe.cli", "demo", "--serve-only", "--port", "0"],
        cwd=REPO_ROOT,
        env=demo_env(settings.home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "no warehouse" in proc.stdout and "run the demo first" in proc.stdout


@pytest.mark.slow
def test_the_whole_demo_then_serving_it(settings: Settings) -> None:
    """The real demo (2 days) with --no-serve exits after its report, as before; then the same
    data folder served by `--serve-only` answers with the demo's KPIs."""
    home = settings.home
    env = demo_env(home)
    done = subprocess.run(
        [sys.executable, "-m", "citypipe.cli", "demo", "--days", "2", "--faults", "none",
         "--no-serve"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== KPIs for 2026-07-15" in done.stdout and "== restatements" in done.stdout
    assert "== serving" not in done.stdout  # --no-serve: exits at once
    # Its KPI runs published the pack on the demo's broker (docs/serving.md, MQTT topics).
    published = json.loads((home / "status" / "kpi_publish.json").read_text())
    assert published["ok"] and published["skipped"] is None and published["topics"] > 0
    with demo(home, "--serve-only") as d:
        check_serving_and_interrupt(d)
