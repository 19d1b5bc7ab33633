"""The token bucket of serving/ratelimit.py, on a fake clock."""

from __future__ import annotations

import pytest

from common.settings import get_settings
from serving.ratelimit import RateLimited, RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_burst_passes_then_the_next_request_waits_one_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=60, burst=5, clock=clock)
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    assert limiter.take("a") == pytest.approx(1.0)  # 60 a minute: one token a second
    clock.now_s += 0.5
    assert limiter.take("a") == pytest.approx(0.5)  # refused requests take nothing
    clock.now_s += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(1.0)


def test_the_sustained_rate_holds_over_a_long_run() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=120, burst=10, clock=clock)
    accepted = 0
    for _ in range(60 * 100):  # 100 attempts a second for a minute
        clock.now_s += 0.01
        accepted += limiter.take("k") == 0.0
    assert accepted == pytest.approx(10 + 120, abs=2)


def test_callers_have_their_own_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=60, burst=2, clock=clock)
    assert limiter.take("key:a") == limiter.take("key:a") == 0.0
    assert limiter.take("key:a") > 0
    assert limiter.take("ip:10.0.0.1") == 0.0


def test_an_idle_bucket_refills_only_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=60, burst=3, clock=clock)
    limiter.take("a")
    clock.now_s += 3600
    assert [limiter.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_zero_disables() -> None:
    for per_min, burst in ((0, 10), (10, 0)):
        limiter = RateLimiter(per_min=per_min, burst=burst, clock=Clock())
        assert all(limiter.take("a") == 0.0 for _ in range(1000))
        assert limiter.callers() == 0
    with pytest.raises(ValueError):
        RateLimiter(per_min=-1, burst=1)


def test_memory_is_bounded_by_forgetting_the_least_recently_seen() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=60, burst=1, clock=clock, max_buckets=100)
    limiter.take("old")
    for i in range(1000):
        clock.now_s += 0.001
        limiter.take(f"ip:{i}")
    assert limiter.callers() == 100
    limiter.take("recent")
    assert limiter.take("recent") > 0  # a caller seen lately is still remembered


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after(0.001) == 1
    assert retry_after(1.0) == 1
    assert retry_after(1.2) == 2


def test_the_settings_default_on_and_can_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYPIPE_SERVE_RATE_LIMIT_PER_MIN", raising=False)
    s = get_settings()
    assert s.serve_rate_limit_per_min > 0 and s.serve_rate_burst > 0
    monkeypatch.setenv("CITYPIPE_SERVE_RATE_LIMIT_PER_MIN", "0")
    assert not RateLimiter(get_settings().serve_rate_limit_per_min, 5).enabled
    monkeypatch.setenv("CITYPIPE_SERVE_RATE_LIMIT_PER_MIN", "-5")
    with pytest.raises(ValueError):
        get_settings()


def test_the_429_body_has_the_error_shape() -> None:
    body = RateLimited(error="too many requests", retry_after_s=3)
    assert body.model_dump(exclude_none=True) == {"error": "too many requests", "retry_after_s": 3}
