"""Shared fixtures. Each test gets its own data directory; nothing touches ./data."""

from __future__ import annotations

from pathlib import Path

import pytest

from citypipe.catalogue import Catalogue, load_catalogue
from citypipe.settings import REPO_ROOT, Settings, get_settings


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
