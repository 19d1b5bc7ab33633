"""Nothing under the data folder is readable by other users (docs/operations.md).

The real chain as an operator runs it, each step a ``citypipe`` subprocess started with the
permissive umask 022 most shells have: ``citypipe ingest`` from a real Mosquitto (landing,
quarantine, status), ``citypipe run citypipe_ingest`` (Airflow metadata and logs, DuckDB,
GX Data Docs) and ``citypipe kpis``. Then every file and folder under the data folder is checked.
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.ingest_fixtures import publish
from support.payloads import make_plan

from common.settings import REPO_ROOT, Settings
from simulator.broker import BrokerHandle

pytestmark = pytest.mark.integration


def citypipe(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CITYPIPE_HOME": str(settings.home), **env}
    full_env.pop("CITYPIPE_MQTT_URL", None)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "citypipe.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        umask=0o022,  # what the CLI inherits from a typical login shell or cron
    )


def modes(home: Path) -> dict[str, int]:
    out = {".": os.lstat(home).st_mode}
    for path in home.rglob("*"):
        out[str(path.relative_to(home))] = os.lstat(path).st_mode
    return out


def open_to_others(found: dict[str, int]) -> list[str]:
    return sorted(
        f"{stat.filemode(m)} {p}"
        for p, m in found.items()
        if m & 0o007 and not stat.S_ISLNK(m)  # a symlink's own bits mean nothing
    )


@pytest.mark.slow
def test_the_whole_chain_leaves_nothing_readable_by_others(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    home = settings.home
    home.chmod(0o755)  # an existing, open data folder is closed by the next command
    url = mosquitto_broker.url
    ingest = ("ingest", "--protocol", "5", "--mqtt-url", url, "--status-interval", "0.2")
    # Once to create the persistent session, then again for what was queued meanwhile.
    assert citypipe(settings, *ingest, "--until-idle", "0.5").returncode == 0
    plan = make_plan(300, seed=3)
    publish(mosquitto_broker, plan.messages)
    proc = citypipe(settings, *ingest, "--until-idle", "1.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = citypipe(settings, "run", "citypipe_ingest", "--date", "2026-11-28")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    kpis = citypipe(settings, "kpis", "--date", "2026-11-28")
    assert kpis.returncode == 1 and "no KPIs computed" in kpis.stderr

    found = modes(home)
    # The chain really wrote where the policy matters most.
    assert any(p.startswith("landing/") and p.endswith(".parquet") for p in found)
    assert any(p.startswith("quarantine/") and p.endswith(".parquet") for p in found)
    assert "status/ingest.json" in found and "warehouse/citypipe.duckdb" in found
    assert "airflow/airflow.db" in found and "airflow/airflow.cfg" in found
    assert any(p.startswith("gx/") and p.endswith(".html") for p in found)
    assert open_to_others(found) == []
    assert stat.S_IMODE(found["."]) == 0o700
    assert stat.S_IMODE(found["status/ingest.json"]) == 0o600


def test_data_group_gets_read_access_and_others_none(
    settings: Settings, mosquitto_broker: BrokerHandle
) -> None:
    group = grp.getgrgid(os.getegid()).gr_name  # one we surely belong to
    home = settings.home
    home.chmod(0o755)
    url = mosquitto_broker.url
    proc = citypipe(
        settings,
        "ingest",
        "--protocol",
        "5",
        "--mqtt-url",
        url,
        "--until-idle",
        "0.5",
        CITYPIPE_DATA_GROUP=group,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = modes(home)
    assert open_to_others(found) == []
    assert stat.S_IMODE(found["."]) == 0o2750  # set-group-id: new entries get the group
    assert stat.S_IMODE(found["status"]) & 0o070 == 0o050
    assert stat.S_IMODE(found["status/ingest.json"]) == 0o640
    assert os.stat(home / "status" / "ingest.json").st_gid == grp.getgrnam(group).gr_gid


def test_unknown_data_group_is_a_clear_configuration_error(settings: Settings) -> None:
    proc = citypipe(settings, "kpis", "--date", "2026-11-28", CITYPIPE_DATA_GROUP="no-such-grp")
    assert proc.returncode == 2
    assert "CITYPIPE_DATA_GROUP='no-such-grp': no such group" in proc.stderr
    assert "Traceback" not in proc.stderr
