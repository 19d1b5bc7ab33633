"""API contract tests: schemathesis generates requests from the OpenAPI spec that the real
`citypipe serve` process publishes (over a warehouse built by the real load and KPI run) and
checks the answers: never a 5xx, every answer matches the schema declared for its status and
content type, data outside the spec is refused with a 4xx, and nothing but /health answers
without a key.

Bounded: a fixed number of examples per operation and mode, a timeout per request, no
shrinking (a failure prints the case as generated, with a curl line to replay it).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)
from support.browser import open_page, screenshot, sign_in
from support.serving_helpers import API_KEY, build, serving

from common.settings import Settings
from serving.routes_apidocs import VENDOR_URL

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.backends("file", "sqlite")]

DAY = date(2026, 11, 21)
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
REQUEST_TIMEOUT_S = 15
ANONYMOUS_EXAMPLES = 5
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]


def run_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    key: str | None = API_KEY,
) -> int:
    """Hypothesis over one operation in one mode; returns how many requests it sent. With a key,
    the schemathesis checks; without one (or with a wrong one), a 401 with the error body."""
    sent = 0

    @hsettings(
        max_examples=EXAMPLES[mode] if key == API_KEY else ANONYMOUS_EXAMPLES,
        deadline=None,  # the request timeout bounds each example; the machine is shared
        database=None,
        derandomize=True,  # the same cases every run: a failure is reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal sent
        sent += 1
        if key == API_KEY:
            case.call_and_validate(
                base_url=base_url,
                session=session,
                headers={"X-API-Key": key},
                checks=CHECKS,
                timeout=REQUEST_TIMEOUT_S,
            )
            return
        headers = {"X-API-Key": key} if key else {}
        r = case.call(
            base_url=base_url, session=session, headers=headers, timeout=REQUEST_TIMEOUT_S
        )
        assert r.status_code == 401, (case.as_curl_command(), r.status_code, r.text[:300])
        assert "API key" in r.json()["error"]
        case.operation.validate_response(r)

    try:
        check()
    except Unsatisfiable:
        # Negative mode over parameters that are all free strings: nothing can be made
        # invalid on the wire (the injection cases of test_serve_api.py cover those).
        if mode is not GenerationMode.NEGATIVE:
            raise
    return sent


def test_every_operation_keeps_the_openapi_contract(settings: Settings, tmp_path: Path) -> None:
    build(settings, DAY)
    started = time.monotonic()
    with serving(settings, tmp_path) as server, requests.Session() as session:
        # The spec itself is behind the key.
        assert requests.get(server.url + "/openapi.json", timeout=10).status_code == 401
        schema = schemathesis.openapi.from_url(
            server.url + "/openapi.json", headers={"X-API-Key": API_KEY}, timeout=30
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        labels = {op.label for op in operations}
        assert {"GET /health", "GET /ready", "GET /api/v1/kpis/{kpi_id}"} <= labels, labels
        assert len(operations) >= 20

        sent: dict[str, int] = {}
        for op in operations:
            for mode in EXAMPLES:
                sent[f"{op.label} {mode.value}"] = run_operation(op, mode, server.url, session)

        # Without a key (or with a wrong one) every operation but /health is a 401 with the
        # declared error body, whatever the parameters.
        for op in operations:
            if op.path == "/health":
                continue
            for key in (None, API_KEY[:-1] + "!"):
                sent[f"{op.label} key={key is not None}"] = run_operation(
                    op, GenerationMode.POSITIVE, server.url, session, key
                )
        assert requests.get(server.url + "/health", timeout=10).json() == {"status": "ok"}

    print(f"{sum(sent.values())} requests in {time.monotonic() - started:.0f} s: {sent}")
    assert sum(sent.values()) >= len(operations) * EXAMPLES[GenerationMode.POSITIVE] // 2, sent
    log = server.log.read_text()
    assert "Traceback" not in log and "unexpected error" not in log


@pytest.mark.backends("file")  # the page reads no data
def test_api_docs_work_offline_in_chromium_with_the_session_cookie(
    settings: Settings, tmp_path: Path, chromium: Any
) -> None:
    with serving(settings, tmp_path) as server:
        context, page, watch = open_page(chromium, server.url)
        try:
            sign_in(page, API_KEY, "/docs")
            assert page.url.endswith("/docs")
            # Every operation of the spec is listed (Swagger UI renders one block per operation).
            spec = requests.get(
                server.url + "/openapi.json", headers={"X-API-Key": API_KEY}, timeout=10
            ).json()
            operations = sum(len(methods) for methods in spec["paths"].values())
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() == operations
            assert page.locator(".info .title").first.inner_text().startswith("citypipe API")

            # "Try it out" on the site catalogue: the cookie authenticates the request.
            block = page.locator("#operations-catalogue-sites_api_v1_sites_get")
            block.locator(".opblock-summary").click()
            block.locator(".try-out__btn").click()
            block.locator(".execute").click()
            status = block.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=30_000)
            assert status.inner_text().strip() == "200"
            assert (
                "WS-AIR-01" in block.locator(".live-responses-table .microlight").first.inner_text()
            )
            screenshot(page, "api_docs")
            # Only this server was asked, and only for its own files and API.
            assert any(VENDOR_URL + "/swagger-ui-bundle.js" in u for u in watch.requests)
            watch.assert_clean()
        finally:
            context.close()
