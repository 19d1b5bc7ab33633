"""The rate limit as the app wires it (serving/app.py RequireKey), in process: which bucket a
request takes from, the 429 answer, and what the spec declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from common.settings import get_settings
from serving.app import create_app

KEY = "unit-key-0123456789abcdef"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = get_settings(
        home=tmp_path,
        api_keys=SecretStr(KEY),
        serve_rate_limit_per_min=60,
        serve_rate_burst=3,
    )
    app = create_app(settings)
    app.state.limiter.clock = lambda: 1000.0  # time stands still: no refill mid-test
    # No lifespan: the warehouse is never opened; /api/v1/sites reads only the catalogue.
    return TestClient(app)


def test_the_key_the_address_and_health_have_separate_fates(client: TestClient) -> None:
    key = {"X-API-Key": KEY}
    assert [client.get("/api/v1/sites", headers=key).status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    limited = client.get("/api/v1/sites", headers=key)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    body = limited.json()
    assert body["retry_after_s"] == 1 and "too many requests" in body["error"]
    assert limited.headers["x-content-type-options"] == "nosniff"  # still a secured answer
    # Wrong keys take from the address's bucket, not the key's (already empty here).
    wrong = [client.get("/api/v1/sites", headers={"X-API-Key": "x" * 20}) for _ in range(4)]
    assert [r.status_code for r in wrong] == [401, 401, 401, 429]
    assert client.post("/login", data={"key": KEY}).status_code == 429  # same address
    assert all(client.get("/health").status_code == 200 for _ in range(20))


def test_the_spec_declares_the_key_and_the_429(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert spec["security"] == [{"ApiKeyHeader": []}, {"Bearer": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "429" not in spec["paths"]["/health"]["get"]["responses"]
    for path, methods in spec["paths"].items():
        if path != "/health":
            for operation in methods.values():
                assert "429" in operation["responses"], path
    assert "retry_after_s" in spec["components"]["schemas"]["RateLimited"]["properties"]
