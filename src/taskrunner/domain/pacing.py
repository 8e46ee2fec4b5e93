"""Client-side token buckets: the Scaler's share of each AWS API bucket, so its calls stay under the quota.

AWS throttles ECS per account and Region with token buckets (a burst capacity refilled at a sustained rate),
shared by every caller. The Scaler takes a fixed share of each and paces itself with the same model, rather
than bursting into the shared bucket and leaning on retries. Two ways to take a token:

* :meth:`TokenBucket.reserve` (observation, launches): always grants, and returns how long to wait first.
  Tokens may go negative, so concurrent callers queue behind each other fairly; the caller sleeps.
* :meth:`TokenBucket.try_take` (changes that can wait a round): grants only if a token is there now, so the
  round never blocks on them; what is refused is asked for again on the next round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float]) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst ≥ 1, not {rate_per_s}/{burst}")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._tokens = float(burst)
        self._at: float | None = None
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens now and return the seconds to wait before using them (0 when they were there)."""
        with self._lock:
            self._refill()
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def wait_s(self, n: float = 1.0) -> float:
        """How long ``n`` tokens are away, taking nothing."""
        with self._lock:
            self._refill()
            return max(0.0, (n - self._tokens) / self.rate)

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are there now; otherwise take nothing."""
        with self._lock:
            self._refill()
            if self._tokens < n:
                return False
            self._tokens -= n
            return True
