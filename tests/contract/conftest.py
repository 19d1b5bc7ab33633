"""A private Mosquitto for the simulator's publish tests (never the system broker on 1883).

It runs with the project's deploy/mosquitto/mosquitto.conf (via ingestion.broker), so the tests
see the deployment's queue and in-flight limits, not a hand-written test config.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion.broker import BrokerHandle, BrokerUnavailable, start_broker


def start_mosquitto(data_dir: Path) -> BrokerHandle:
    """Mosquitto or nothing: fail when CITYPIPE_REQUIRE_MOSQUITTO=1 (CI sets it), else skip."""
    try:
        return start_broker(data_dir, prefer="mosquitto")
    except BrokerUnavailable as exc:
        if os.environ.get("CITYPIPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(f"CITYPIPE_REQUIRE_MOSQUITTO=1 but mosquitto is unavailable: {exc}")
        pytest.skip(
            f"mosquitto unavailable (install it, or CI sets CITYPIPE_REQUIRE_MOSQUITTO=1): {exc}"
        )


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[BrokerHandle]:
    with start_mosquitto(tmp_path / "broker") as handle:
        yield handle


@pytest.fixture
def mosquitto(mosquitto_broker: BrokerHandle) -> str:
    """The URL of a fresh Mosquitto on a free port (stopped after the test)."""
    return mosquitto_broker.url
