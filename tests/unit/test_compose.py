"""docker-compose.yml read as data: health checks, secrets only from files, volumes, the broker's
auth files, the ingest instances on the shared subscription. No Docker engine needed;
`docker-compose config` runs in tests/integration/deploy/ when it is installed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from citypipe.broker_acl import SHARED_GROUP
from common.settings import REPO_ROOT

ROOT = REPO_ROOT
# Environment names that hold a secret when they carry a value themselves.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEYS?$|FERNET|CREDENTIAL", re.IGNORECASE)
AIRFLOW_COMPONENTS = {
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def one_shot(name: str) -> bool:
    """A job that runs to completion before others start (they wait for it to succeed)."""
    for other in services().values():
        dep = other.get("depends_on")
        if isinstance(dep, dict) and (dep.get(name) or {}).get("condition") == (
            "service_completed_successfully"
        ):
            return True
    return False


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(w) for w in cmd]


def secret_names(service: dict[str, Any]) -> set[str]:
    out = set()
    for item in service.get("secrets") or []:
        out.add(item if isinstance(item, str) else item["source"])
    return out


def test_the_stack_has_every_part_of_a_county_server() -> None:
    svc = services()
    for name in ("mosquitto", "postgres", "alerts", "serve", "ingest-1", *AIRFLOW_COMPONENTS):
        assert name in svc, f"no service {name}"
    assert svc["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert svc["postgres"]["image"].startswith("postgres:")
    for name, component in AIRFLOW_COMPONENTS.items():
        assert command_words(svc[name])[:2] == ["airflow", component], name
    for name in (*AIRFLOW_COMPONENTS, "ingest-1", "alerts", "serve"):
        assert svc[name].get("build") == ".", f"{name} must run the image built from Dockerfile"


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in services().items():
        if one_shot(name):
            assert service.get("restart") == "no", f"one-shot {name} must not be restarted"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert not check.get("disable"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: health check without {key}"


def test_health_check_scripts_exist() -> None:
    for name, service in services().items():
        check = service.get("healthcheck") or {}
        for word in check.get("test", [])[1:]:
            if word.startswith("/app/"):
                path = ROOT / word.removeprefix("/app/")
                assert path.is_file(), f"{name}: health check script {word} is not in the image"


def test_no_secret_value_is_written_in_the_compose_file() -> None:
    for name, service in services().items():
        for key, value in env_of(service).items():
            if key.endswith(("_FILE", "_CMD")):
                continue
            assert not SECRET_NAME.search(key), f"{name}: {key} carries a secret value itself"
            # A URL may name a user, never a password (user:password@host).
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{name}: {key} has a password"
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"(?i)(password|secret)\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}['\"]?\s*$", text)


def test_secrets_come_from_files_the_service_is_given() -> None:
    data = compose()
    declared = data["secrets"]
    for secret, spec in declared.items():
        assert set(spec) == {"file"}, f"secret {secret} must come from a file"
        assert spec["file"] == f"./deploy/secrets/{secret}", secret
    for name, service in services().items():
        given = secret_names(service)
        assert given <= set(declared), f"{name}: undeclared secrets {given - set(declared)}"
        refs = set()
        for key, value in env_of(service).items():
            for ref in re.findall(r"/run/secrets/([A-Za-z0-9_]+)", value):
                assert key.endswith(("_FILE", "_CMD")), f"{name}: {key} reads a secret directly"
                refs.add(ref)
        test = " ".join((service.get("healthcheck") or {}).get("test", []))
        refs |= set(re.findall(r"/run/secrets/([A-Za-z0-9_]+)", test))
        assert refs <= given, f"{name} reads secrets it is not given: {refs - given}"


def test_secret_files_are_kept_out_of_git_and_the_image() -> None:
    text = (ROOT / "deploy" / "secrets" / ".gitignore").read_text(encoding="utf-8")
    ignore = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert ignore[0] == "*", "deploy/secrets/.gitignore must ignore everything by default"
    shipped = sorted(p.name for p in (ROOT / "deploy" / "secrets").iterdir())
    assert shipped == [".gitignore", "README.md"], f"a secret is in the tree: {shipped}"
    readme = (ROOT / "deploy" / "secrets" / "README.md").read_text(encoding="utf-8")
    for secret in compose()["secrets"]:
        assert f"`{secret}`" in readme, f"deploy/secrets/README.md does not explain {secret}"
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "deploy/secrets/" in dockerignore


def test_env_example_defaults_no_secret() -> None:
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if SECRET_NAME.search(key) and not key.endswith(("_FILE", "_CMD")):
            assert not value.strip(), f".env.example gives {key} a value"


def test_settings_the_compose_file_reads_are_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for var in sorted(set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))):
        assert re.search(rf"^#? ?{var}=", example, re.MULTILINE), f"{var} not in .env.example"


def test_data_lives_in_named_volumes() -> None:
    data = compose()
    volumes = set(data["volumes"])
    assert {"citypipe-data", "postgres-data", "mosquitto-data"} <= volumes
    svc = services()
    for name in (*AIRFLOW_COMPONENTS, "ingest-1", "alerts", "serve"):
        assert "citypipe-data:/data" in svc[name]["volumes"], name
        assert env_of(svc[name])["CITYPIPE_HOME"] == "/data", name
    assert "mosquitto-data:/mosquitto/data" in svc["mosquitto"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in svc["postgres"]["volumes"]
    for name, service in svc.items():
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in volumes, f"{name}: volume {source} is not declared"


def mosquitto_conf() -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(encoding="utf-8").splitlines():
        words = line.split(None, 1)
        if words and not words[0].startswith("#"):
            conf[words[0]] = words[1].strip() if len(words) > 1 else ""
    return conf


def test_broker_refuses_anonymous_and_loads_the_mounted_password_and_acl_files() -> None:
    conf = mosquitto_conf()
    assert conf["allow_anonymous"] == "false"
    assert conf["persistence"] == "true"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services()["mosquitto"]["volumes"]}
    assert mounts[conf["acl_file"]] == "./deploy/mosquitto/acl"
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"
    assert mounts[conf["persistence_location"].rstrip("/")] == "mosquitto-data"
    # The password file sits in the volume the one-shot builder fills before the broker starts.
    auth_dir = str(Path(conf["password_file"]).parent)
    assert mounts[auth_dir] == "mosquitto-auth"
    builder = services()["broker-passwd"]
    assert f"mosquitto-auth:{auth_dir}" in builder["volumes"]
    assert one_shot("broker-passwd")
    assert {s for s in secret_names(builder)} >= {
        "mqtt_ingest_password",
        "mqtt_alerts_password",
        "mqtt_serving_password",
        "mqtt_health_password",
        "mqtt_sensor_accounts",
    }


def test_ingest_instances_share_one_subscription_with_fixed_distinct_client_ids() -> None:
    ingest = {n: s for n, s in services().items() if n.startswith("ingest-")}
    assert len(ingest) >= 2, "a second instance must be ready to start (profile scale)"
    client_ids = []
    for name, service in ingest.items():
        words = command_words(service)
        assert words[:2] == ["citypipe", "ingest"] and "--shared" in words, name
        client_id = words[words.index("--client-id") + 1]
        assert "$(" not in client_id and "HOSTNAME" not in client_id, f"{name}: id must be fixed"
        client_ids.append(client_id)
        assert env_of(service)["CITYPIPE_MQTT_USERNAME"] == "citypipe-ingest"
        assert service.get("stop_grace_period"), f"{name}: SIGTERM needs time to flush"
        assert "deploy" not in service or "replicas" not in service["deploy"], (
            f"{name}: replicas would share one client id"
        )
    assert len(set(client_ids)) == len(client_ids), f"client ids collide: {client_ids}"
    assert SHARED_GROUP == "citypipe"


def test_services_use_their_own_broker_accounts() -> None:
    svc = services()
    assert env_of(svc["alerts"])["CITYPIPE_MQTT_USERNAME"] == "citypipe-alerts"
    assert "mqtt_alerts_password" in secret_names(svc["alerts"])
    assert "mqtt_ingest_password" not in secret_names(svc["alerts"])


def test_airflow_reads_its_database_and_keys_through_commands_on_secret_files() -> None:
    svc = services()
    for name in (*AIRFLOW_COMPONENTS, "airflow-init"):
        env = env_of(svc[name])
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env, name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"].endswith("sql_alchemy_conn.py")
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW_HOME"].startswith("/data/")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-api-server:"
        )
        for key in ("FERNET_KEY", "JWT_SECRET", "SECRET_KEY"):
            matching = [k for k in env if k.endswith(f"__{key}_CMD")]
            assert matching, f"{name}: no *_{key}_CMD"
    assert one_shot("airflow-init")


def test_the_lake_catalog_is_on_the_postgres_service() -> None:
    for name in (*AIRFLOW_COMPONENTS, "airflow-init", "serve"):
        env = env_of(services()[name])
        assert env["CITYPIPE_WAREHOUSE"].startswith("ducklake:postgres://citypipe@postgres:")
        assert env["CITYPIPE_WAREHOUSE_PASSWORD_FILE"] == "/run/secrets/warehouse_password"
    # The broker's clients never open the warehouse (and are not given its password).
    for name in ("ingest-1", "alerts"):
        assert "CITYPIPE_WAREHOUSE" not in env_of(services()[name]), name
        assert "warehouse_password" not in secret_names(services()[name]), name


@pytest.mark.parametrize("script", ["deploy/mosquitto/build-passwd.sh", "deploy/airflow/init.sh"])
def test_shell_scripts_stop_on_the_first_error(script: str) -> None:
    text = (ROOT / script).read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text


def test_the_image_runs_as_a_service_account_with_the_venv_on_path() -> None:
    """Airflow's components start `airflow` subprocesses by name: the venv's bin must be on PATH;
    and nothing in the stack needs root once the image is built."""
    from test_dockerfile import dockerfile

    steps = dockerfile()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"}
    env = " ".join(args for word, args in steps if word == "ENV")
    assert 'PATH="/app/.venv/bin:$PATH"' in env
    assert "CITYPIPE_HOME=/data" in env


CELERY_WORKERS = ("airflow-worker-1", "airflow-worker-2")


def test_the_celery_profile_adds_redis_and_two_workers_behind_one_switch() -> None:
    svc = services()
    for name in ("redis", *CELERY_WORKERS):
        assert svc[name].get("profiles") == ["celery"], f"{name} must be in the celery profile only"
    # Everything else starts without the profile (LocalExecutor, the default).
    for name, service in svc.items():
        if name not in ("redis", *CELERY_WORKERS):
            assert "celery" not in (service.get("profiles") or []), name
    assert svc["redis"]["image"].startswith("redis:")
    assert "redis-data:/data" in svc["redis"]["volumes"]
    names = set()
    for name in CELERY_WORKERS:
        words = command_words(svc[name])
        assert words[:3] == ["airflow", "celery", "worker"], name
        names.add(words[words.index("--celery-hostname") + 1])
        assert svc[name].get("build") == ".", name
        assert "citypipe-data:/data" in svc[name]["volumes"], name
        dep = svc[name]["depends_on"]
        assert dep["redis"]["condition"] == "service_healthy", name
        assert dep["airflow-init"]["condition"] == "service_completed_successfully", name
        # The same Airflow configuration as the scheduler: metadata, keys, DAGs, warehouse.
        assert env_of(svc[name]) == env_of(svc["airflow-scheduler"]), name
        assert secret_names(svc[name]) == secret_names(svc["airflow-scheduler"]), name
    assert len(names) == len(CELERY_WORKERS), f"two workers need distinct node names: {names}"
    # One switch: the executor comes from .env, LocalExecutor when unset.
    for name in (*AIRFLOW_COMPONENTS, "airflow-init", *CELERY_WORKERS):
        assert env_of(svc[name])["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"


def test_celery_reaches_redis_with_the_password_from_its_secret_file() -> None:
    svc = services()
    assert "redis_password" in secret_names(svc["redis"])
    entry = " ".join(svc["redis"].get("entrypoint") or [])
    assert "/run/secrets/redis_password" in entry and "requirepass" in entry
    assert "--requirepass" not in entry, "a password on a command line is visible in ps"
    for name in (*AIRFLOW_COMPONENTS, *CELERY_WORKERS):
        env = env_of(svc[name])
        assert "AIRFLOW__CELERY__BROKER_URL" not in env, name
        script = env["AIRFLOW__CELERY__BROKER_URL_CMD"].split()[-1]
        assert (ROOT / script.removeprefix("/app/")).is_file(), script
        assert env["CELERY_BROKER_PASSWORD_FILE"] == "/run/secrets/redis_password"


def test_the_celery_broker_url_command_quotes_the_password(tmp_path: Path) -> None:
    import subprocess
    import sys

    secret = tmp_path / "redis_password"
    secret.write_text("p@ss/word:1\n", encoding="utf-8")
    script = ROOT / "deploy" / "airflow" / "celery_broker_url.py"
    out = subprocess.run(
        [sys.executable, str(script)],
        env={"CELERY_BROKER_PASSWORD_FILE": str(secret)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "redis://:p%40ss%2Fword%3A1@redis:6379/0"
    missing = subprocess.run([sys.executable, str(script)], env={}, capture_output=True, text=True)
    assert missing.returncode == 2 and "no default password" in missing.stderr
