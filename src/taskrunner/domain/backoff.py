"""The one back-off rule: exponential from a base, capped, optionally with equal jitter.

Every place that waits longer after each failure uses it — the Dispatcher returning a message to the queue,
the Tracker spacing retries of a run, a worker leaving a failed message invisible, the CLI resending a batch —
so "10 s, 20 s, 40 s … capped" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable


def backoff_s(failures: int, base_s: float, cap_s: float, *, jitter: Callable[[], float] | None = None) -> float:
    """The wait after the ``failures``-th consecutive failure: ``base · 2^(failures-1)``, at most ``cap_s``.

    With ``jitter`` (a source of U(0, 1)), equal jitter: the wait is drawn from [half, all] of that, so a burst
    of failures (a bad image, a Spot reclaim, a throttled minute) does not come back all at once.
    """
    exponent = min(max(failures, 1) - 1, 62)
    ceiling = min(cap_s, base_s * float(1 << exponent))
    if jitter is None:
        return ceiling
    return ceiling * (0.5 + jitter() / 2)
