"""Helpers of the API's reliability cases (tests/reliability/test_rel_api.py): requests sent
byte for byte as written (no client normalising the path), medians of response times, and a
schemathesis run over every operation that counts instead of stopping at the first failure."""

from __future__ import annotations

import http.client
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def raw(base_url: str, method: str, target: str, headers: dict[str, str] | None = None) -> Answer:
    """One request whose request-target is sent exactly as given (``/a/../b``, ``%2e%2e``,
    ``//x``): httpx and requests would normalise or re-encode it first."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def median_us(samples_ns: list[int]) -> float:
    return statistics.median(samples_ns) / 1000


def interleaved_medians_us(
    probes: dict[str, Callable[[], object]], samples: int
) -> dict[str, float]:
    """The median time of each probe over ``samples`` rounds, the probes taking turns (in a
    shuffled order) so a slower stretch of the shared machine falls on all of them alike."""
    times: dict[str, list[int]] = {name: [] for name in probes}
    order = list(probes.items())
    shuffle = random.Random(13).shuffle  # the same orders every run
    for _ in range(samples):
        shuffle(order)  # no probe always goes first, or always after the same other one
        for name, probe in order:
            began = time.perf_counter_ns()
            probe()
            times[name].append(time.perf_counter_ns() - began)
    return {name: median_us(found) for name, found in times.items()}


@dataclass
class FuzzResult:
    operations: int = 0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


def fuzz(
    base_url: str, key: str, examples: dict[GenerationMode, int], timeout_s: float = 15
) -> FuzzResult:
    """schemathesis over every operation of the served spec in each mode, with the key. Every
    failing operation is recorded (the first failing case of each), and every status counted."""
    result = FuzzResult()
    schema = schemathesis.openapi.from_url(
        base_url + "/openapi.json", headers={"X-API-Key": key}, timeout=30
    )
    operations = [found.ok() for found in schema.get_all_operations()]
    result.operations = len(operations)
    with requests.Session() as session:

        def count(r: requests.Response, *_: Any, **__: Any) -> None:
            result.requests += 1
            result.statuses[r.status_code] = result.statuses.get(r.status_code, 0) + 1

        session.hooks["response"].append(count)
        for op in operations:
            for mode, n in examples.items():

                @hsettings(
                    max_examples=n,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=op.as_strategy(generation_mode=mode))
                def check(case: Any) -> None:
                    case.call_and_validate(
                        base_url=base_url,
                        session=session,
                        headers={"X-API-Key": key},
                        checks=CHECKS,
                        timeout=timeout_s,
                    )

                try:
                    check()
                except Unsatisfiable:
                    if mode is not GenerationMode.NEGATIVE:
                        result.failures.append(f"{op.label} {mode.value}: unsatisfiable")
                except Exception as exc:  # one failure per operation and mode, then go on
                    result.failures.append(f"{op.label} {mode.value}: {str(exc)[:600]}")
    return result
