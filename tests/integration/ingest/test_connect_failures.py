"""`citypipe ingest --until-idle` that never reaches the broker fails loudly, never leaking the password.

Real subprocesses of the ``citypipe`` command against a closed port and a real Mosquitto that
requires a password (``password_file``), so cron sees a broken password as a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import Settings
from ingestion.service import EXIT_NEVER_CONNECTED
from ingestion.session import connack_failure_reason, socket_failure_reason
from simulator.broker import BrokerHandle, BrokerUnavailable, free_port, start_broker

PASSWORD = "Pa55-w0rd-never-logged"


def run_ingest(
    settings: Settings, url: str, password: str, idle_s: float = 1.0
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CITYPIPE_HOME": str(settings.home),
        "CITYPIPE_MQTT_PASSWORD": password,
    }
    env.pop("CITYPIPE_MQTT_URL", None)
    cmd = [sys.executable, "-m", "citypipe.cli", "--log-level", "DEBUG", "ingest"]
    cmd += ["--until-idle", str(idle_s), "--protocol", "5", "--mqtt-url", url]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def warnings(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if " WARNING " in ln]


def test_refused_port_exits_3_with_a_warning_per_attempt(settings: Settings) -> None:
    port = free_port()  # bound then closed: nothing listens there
    proc = run_ingest(settings, f"mqtt://citypipe@127.0.0.1:{port}", PASSWORD, idle_s=4.0)
    assert proc.returncode == EXIT_NEVER_CONNECTED, proc.stderr[-3000:]
    attempts = [w for w in warnings(proc) if "cannot connect to broker" in w]
    # First attempt at once, the next after paho's backoff (~3 s): at least two within 4 s.
    assert len(attempts) >= 2, proc.stderr[-3000:]
    for line in attempts:
        assert f"citypipe@127.0.0.1:{port}" in line and "connection refused" in line
    assert "never connected" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[BrokerHandle]:
    """A real Mosquitto (the project's config) that refuses anonymous and wrong passwords."""
    passwd = shutil.which("mosquitto_passwd")
    data = tmp_path / "auth-broker"
    data.mkdir()
    pwfile = data / "passwords"
    try:
        if passwd is None:
            raise BrokerUnavailable("mosquitto_passwd not found")
        subprocess.run([passwd, "-c", "-b", str(pwfile), "citypipe", PASSWORD], check=True)
        pwfile.chmod(0o600)
        handle = start_broker(
            data,
            prefer="mosquitto",
            extra_config={"allow_anonymous": "false", "password_file": str(pwfile)},
        )
    except BrokerUnavailable as exc:
        if os.environ.get("CITYPIPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(f"CITYPIPE_REQUIRE_MOSQUITTO=1 but mosquitto is unavailable: {exc}")
        pytest.skip(f"mosquitto unavailable: {exc}")
    with handle:
        yield handle


def test_bad_password_exits_3_and_never_logs_it(
    settings: Settings, password_broker: BrokerHandle
) -> None:
    url = f"mqtt://citypipe@127.0.0.1:{password_broker.port}"
    wrong = "Wr0ng-" + PASSWORD
    proc = run_ingest(settings, url, wrong)
    assert proc.returncode == EXIT_NEVER_CONNECTED, proc.stderr[-3000:]
    refusals = [w for w in warnings(proc) if "refused the connection" in w]
    assert refusals, proc.stderr[-3000:]
    for line in refusals:
        assert f"citypipe@127.0.0.1:{password_broker.port}" in line and "not authorised" in line
    assert wrong not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr

    # The same broker with the right password: a clean batch run, and still no password shown.
    ok = run_ingest(settings, url, PASSWORD)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "connected (MQTT 5" in ok.stderr
    assert PASSWORD not in ok.stdout + ok.stderr


def test_failure_reasons_in_words() -> None:
    assert "refused" in socket_failure_reason(ConnectionRefusedError(111, "Connection refused"))
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert socket_failure_reason(dns) == "DNS lookup failed (Name or service not known)"
    assert "timed out" in socket_failure_reason(TimeoutError())
    tls = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]")
    assert socket_failure_reason(tls).startswith("TLS handshake failed")
    assert socket_failure_reason(OSError(113, "No route to host")) == "No route to host"
    assert connack_failure_reason(134, "Bad user name or password").startswith("not authorised")
    assert connack_failure_reason(135, "Not authorized").startswith("not authorised")
    assert connack_failure_reason(136, "Server unavailable").endswith("(CONNACK code 136)")
