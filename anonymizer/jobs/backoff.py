"""The one retry delay: exponential, capped, jittered. Used by the daemon's job retries and the
buckets' upload retries."""

from __future__ import annotations

import random


def backoff_s(attempts: int, base_s: float, max_s: float, *, rng: random.Random | None = None) -> float:
    """Return the delay before retry number ``attempts`` (1-based): exponential, capped, jittered.

    The jitter (x0.5 .. x1.5) keeps many jobs that failed together (a share went away) from
    retrying in lock-step.
    """
    rng = rng or random
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return delay * rng.uniform(0.5, 1.5)
