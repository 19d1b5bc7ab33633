"""Shared fixtures. Each test gets its own data directory; nothing touches ./data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.catalogue import Catalogue, load_catalogue
from common.settings import REPO_ROOT, Settings, get_settings
from simulator.broker import BrokerHandle, BrokerUnavailable, start_broker


@pytest.fixture
def home(tmp_path: Path) -> Path:
    d = tmp_path / "citypipe-home"
    d.mkdir()
    return d


@pytest.fixture
def settings(
    home: Path, monkeypatch: pytest.MonkeyPatch, warehouse_kind: str, request: pytest.FixtureRequest
) -> Settings:
    # Tests must not inherit a developer's broker, data directory or warehouse.
    for var in (
        "CITYPIPE_MQTT_URL",
        "CITYPIPE_HOME",
        "CITYPIPE_CITY",
        "CITYPIPE_WAREHOUSE",
        "CITYPIPE_WAREHOUSE_DATA_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CITYPIPE_HOME", str(home))
    from support.backends import warehouse_url_for  # a plugin module: imported once registered

    url = warehouse_url_for(warehouse_kind, request)
    if url is not None:
        monkeypatch.setenv("CITYPIPE_WAREHOUSE", url)
    return get_settings()


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(REPO_ROOT / "reference", "wushan")


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[BrokerHandle]:
    """A real Mosquitto with the project's config on a free port; no silent fallback to amqtt.

    Without the binary: fail when CITYPIPE_REQUIRE_MOSQUITTO=1 (CI sets it), else skip.
    """
    try:
        handle = start_broker(tmp_path / "broker", prefer="mosquitto")
    except BrokerUnavailable as exc:
        if os.environ.get("CITYPIPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(f"CITYPIPE_REQUIRE_MOSQUITTO=1 but mosquitto is unavailable: {exc}")
        pytest.skip(
            f"mosquitto unavailable (install it, or CI sets CITYPIPE_REQUIRE_MOSQUITTO=1): {exc}"
        )
    with handle:
        assert handle.kind == "mosquitto"
        yield handle


# Fixture plugins shared by unit and integration tests of one area (tests/support/).
pytest_plugins = [
    "support.backends",
    "support.simulator_fixtures",
    "support.ingest_fixtures",
    "support.transforms_fixtures",
    "support.air_fixtures",
    "support.s3_fixtures",
    "support.browser",
    "support.reliability",
]

# Tests live in tests/unit (in-process: no broker, no Airflow, no subprocess, no warehouse
# file; in-memory DuckDB and GX are fine) or tests/integration (real Mosquitto, real Airflow
# runs, real DuckDB files, processes). A fixture below makes a test an integration test.
INTEGRATION_FIXTURES = frozenset(
    {
        "mosquitto_broker",
        "broker",
        "ingest_settings",
        "mosquitto",
        "wh",
        "insert_obs",
        "s3_server",
        "s3_bucket",
        "s3_settings",
        "chromium",
    }
)
TESTS_ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Enforce the split at collection: a misplaced test is a usage error, not a silent pass.

    Every test under integration/ gets the ``integration`` marker, so ``-m "not integration"``
    runs the unit tests alone; a unit test that is marked integration or asks for an
    integration fixture stops the run.
    """
    wrong: list[str] = []
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(TESTS_ROOT)
        kind = rel.parts[0]
        if kind == "integration":
            item.add_marker(pytest.mark.integration)
        elif kind == "reliability":
            # The whole-chain suite (tests/reliability, `make test-reliability`): real processes.
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)
        elif kind == "unit":
            used = INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if item.get_closest_marker("integration") is not None or used:
                why = f"uses {sorted(used)}" if used else "is marked integration"
                wrong.append(f"{item.nodeid} {why}: move it to tests/integration/")
        else:
            wrong.append(
                f"{item.nodeid}: tests live under tests/unit/, tests/integration/ "
                "or tests/reliability/"
            )
    if wrong:
        raise pytest.UsageError("misplaced tests:\n  " + "\n  ".join(wrong))
