"""How long to wait before the next try when an endpoint does not say: full jitter."""

from __future__ import annotations

import random

BASE_S = 1.0
CAP_S = 60.0


def full_jitter(tries: int, base_s: float = BASE_S, cap_s: float = CAP_S) -> float:
    """A wait for try number `tries` (2 after the first failure): uniform between 0 and
    base·2^(tries-2), capped. Clients that failed together then come back spread out,
    instead of all at once (the 'full jitter' of exponential backoff)."""
    ceiling = min(cap_s, base_s * 2 ** max(0, tries - 2))
    return random.uniform(0, ceiling)
