"""The API's rate limit: a token bucket per caller (docs/serving.md, "Rate limit").

A caller is an API key, a browser session, or, for a request that has neither (the sign-in form,
a wrong key), the client's IP address: so guessing keys is limited as well as a runaway
program. Each bucket holds up to ``burst`` tokens and refills at ``per_min`` tokens a minute; a
request takes one, and a request that finds none is answered 429 with ``Retry-After``.

In memory, per process: ``citypipe serve`` is one process. Written here (about 60 lines) rather
than taken from slowapi/limits, which bring a decorator per route and storage backends this
server does not need.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from pydantic import Field

from serving.responses import Error

# Past this many callers the least recently seen is forgotten (a bucket idle that long is full
# anyway): memory stays bounded (~20 MB) whatever callers a client makes up.
MAX_BUCKETS = 100_000


class RateLimited(Error):
    """A 429: this caller sent more than the limit allows; ask again after ``retry_after_s``."""

    retry_after_s: int = Field(description="seconds until a request is accepted again")


class RateLimiter:
    """Token buckets keyed by caller. ``clock``: monotonic seconds (a fake one in tests)."""

    def __init__(
        self,
        per_min: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if per_min < 0 or burst < 0:
            raise ValueError("rate limit and burst must be >= 0")
        self.enabled = per_min > 0 and burst > 0
        self.rate_per_s = per_min / 60.0
        self.burst = burst
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Take one token of ``caller``'s bucket: 0.0 when the request may go on, else the
        seconds until a token is back (the request is refused and takes nothing)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            wait_s = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s
            if wait_s == 0.0:
                tokens -= 1.0
            self._buckets[caller] = (tokens, now)  # most recently seen last
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
            return wait_s

    def callers(self) -> int:
        """How many callers it remembers (not __len__: an empty limiter must stay truthy)."""
        return len(self._buckets)


def retry_after(wait_s: float) -> int:
    """``Retry-After`` in whole seconds, never 0 (a client asking at once is refused again)."""
    return max(1, math.ceil(wait_s))
