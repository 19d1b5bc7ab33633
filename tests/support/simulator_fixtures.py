"""A private Mosquitto for the simulator's publish tests (never the system broker on 1883).

It runs with the project's deploy/mosquitto/mosquitto.conf (via simulator.broker), so the tests
see the deployment's queue and in-flight limits, not a hand-written test config.
"""

from __future__ import annotations

import pytest

from simulator.broker import BrokerHandle


@pytest.fixture
def mosquitto(mosquitto_broker: BrokerHandle) -> str:
    """The URL of a fresh Mosquitto on a free port (stopped after the test)."""
    return mosquitto_broker.url
