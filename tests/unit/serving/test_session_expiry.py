"""A session cookie signed by the server itself but expired is refused by the app (the
reliability case can only forge cookies; the server's secret never leaves the process)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from common.settings import get_settings
from serving.app import create_app
from serving.session import COOKIE, SESSION_S

KEY = "unit-key-0123456789abcdef"


def test_an_expired_session_is_refused_and_a_fresh_one_accepted(tmp_path: Path) -> None:
    app = create_app(get_settings(home=tmp_path, api_keys=SecretStr(KEY)))
    signer = app.state.signer
    expired = signer.issue(now=time.time() - SESSION_S - 1)
    fresh = signer.issue()
    client = TestClient(app)
    client.cookies.set(COOKIE, expired)
    assert client.get("/api/v1/sites").status_code == 401
    client.cookies.set(COOKIE, fresh)
    assert client.get("/api/v1/sites").status_code == 200
