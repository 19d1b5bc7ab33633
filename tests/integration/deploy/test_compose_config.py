"""`docker-compose config` on the shipped docker-compose.yml: Compose itself parses, merges the
anchors, interpolates .env and checks the schema (no engine needed). Debian's `docker-compose`
(1.29) is the reference; without it the tests skip, unless CITYPIPE_REQUIRE_DOCKER_COMPOSE=1
(.ci/run installs it and sets that).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CITYPIPE_REQUIRE_DOCKER_COMPOSE") == "1":
            pytest.fail("CITYPIPE_REQUIRE_DOCKER_COMPOSE=1 but docker-compose is not installed")
        pytest.skip("docker-compose not installed (Debian: apt-get install docker-compose)")
    return found


def run_config(
    tmp_path: Path, env_lines: list[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "compose.env"
    env_file.write_text("\n".join(env_lines) + "\n", encoding="utf-8")
    # A clean environment: neither the developer's CITYPIPE_* nor a DOCKER_HOST leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run(
        [
            docker_compose(),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            *extra,
            "config",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rendered(tmp_path: Path, *extra: str) -> dict[str, Any]:
    result = run_config(tmp_path, ["CITYPIPE_CITY=wushan", "COMPOSE_PROJECT_NAME=citypipe"], *extra)
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def test_compose_accepts_the_file_and_every_service_keeps_its_health_check(
    tmp_path: Path,
) -> None:
    data = rendered(tmp_path)
    services = data["services"]
    one_shots = {"broker-passwd", "airflow-init"}
    assert one_shots <= set(services)
    for name, service in services.items():
        if name in one_shots:
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} lost its health check"
    # `config` lists every service; the second ingest instance starts with --profile scale only.
    assert services["ingest-2"].get("profiles") == ["scale"]
    assert "profiles" not in services["ingest-1"]
    command = services["ingest-1"]["command"]
    assert command[command.index("--client-id") + 1] == "citypipe-ingest-wushan-1"
    assert services["ingest-1"]["environment"]["CITYPIPE_CITY"] == "wushan"
    for secret in data["secrets"].values():
        assert Path(secret["file"]).parent == REPO_ROOT / "deploy" / "secrets"


def test_the_scale_profile_adds_a_second_ingest_instance(tmp_path: Path) -> None:
    services = rendered(tmp_path, "--profile", "scale")["services"]
    ids = []
    for name in ("ingest-1", "ingest-2"):
        command = services[name]["command"]
        ids.append(command[command.index("--client-id") + 1])
        assert "--shared" in command
    assert ids == ["citypipe-ingest-wushan-1", "citypipe-ingest-wushan-2"]


def test_without_a_city_compose_refuses_to_start(tmp_path: Path) -> None:
    result = run_config(tmp_path, ["COMPOSE_PROJECT_NAME=citypipe"])
    assert result.returncode != 0
    assert "set CITYPIPE_CITY in .env" in result.stderr
