"""A steady time-left estimate for a generating attempt: none until the rate has settled."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

STEADY_TOKENS = 16  # tokens generated before an estimate is given
WINDOW_S = 3.0  # the rate is measured over at most this much recent generation
LEAN = 0.3  # how far each update moves the estimate towards the fresh one


class EtaEstimator:
    """Time left from the recent generation rate, with the first token's delay left out.

    The first tokens of an attempt come slowly (the weights are still paging in, threads are
    waking), so a rate from them overstates the time left many times over. No estimate is
    given before STEADY_TOKENS tokens; the rate is measured over the last WINDOW_S seconds
    only (never from the start), and the estimate counts down with the clock, leaning
    towards each fresh one, so it does not jump between updates.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()  # (time, tokens done), recent
        self._eta: float | None = None
        self._eta_at = 0.0

    def update(self, done: int, total: int) -> float | None:
        """The estimate after `done` of `total` tokens (None: not steady yet)."""
        now = self._clock()
        samples = self._samples
        if samples and done < samples[-1][1]:  # the counts started again
            samples.clear()
            self._eta = None
        if done <= 0:
            return None
        if not samples or done > samples[-1][1]:
            samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > WINDOW_S:
            samples.popleft()
        if done < STEADY_TOKENS:
            return None
        start_at, start_done = samples[0]
        if now <= start_at or done <= start_done:
            return None if self._eta is None else round(self._eta, 1)
        raw = max(0, total - done) * (now - start_at) / (done - start_done)
        if self._eta is None:
            self._eta = raw
        else:
            aged = max(0.0, self._eta - (now - self._eta_at))
            self._eta = aged + LEAN * (raw - aged)
        self._eta_at = now
        return round(self._eta, 1)
