"""Capped exponential backoff with jitter: the agent's reconnects and the webhook's retries.

Both wait ``min(cap, base * 2**(failures-1))`` seconds after the n-th failure in a row,
jittered down to half that, so a fleet that lost its server (or a receiver that was down)
does not come back all in the same second.
"""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(failures: int, base: float, cap: float, rnd: float | None = None) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 = the first), in
    ``[ceiling/2, ceiling]``; ``rnd`` in [0, 1] fixes the jitter (tests)."""
    ceiling: float = min(cap, base * 2.0 ** min(max(0, failures - 1), 60))
    return ceiling * (0.5 + 0.5 * (random.random() if rnd is None else rnd))
