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
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # Tests must not inherit a developer's broker or data directory.
    for var in ("CITYPIPE_MQTT_URL", "CITYPIPE_HOME", "CITYPIPE_CITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CITYPIPE_HOME", str(home))
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
