"""The service's protection: a circuit breaker per dependency (pure, clock injected)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    """Opens when at least ``error_rate`` of the calls in the last ``window_seconds``
    failed (once ``min_calls`` were made); refuses calls for ``reset_seconds``; then lets
    one trial call through (half open): its success closes it, its failure opens it again.
    """

    name: str
    error_rate: float
    min_calls: int
    reset_seconds: float
    window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    opened_at: float = 0.0
    trips: int = 0
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)
    _failures: int = 0  # among _calls, kept as calls come and go: O(1) a call
    _trial: bool = False

    def _prune(self, now: float) -> None:
        while self._calls and now - self._calls[0][0] > self.window_seconds:
            _, ok = self._calls.popleft()
            self._failures -= not ok

    def allow(self) -> bool:
        """May a call go to the dependency now?"""
        if self.state == CLOSED:
            return True
        now = self.clock()
        if self.state == OPEN and now - self.opened_at >= self.reset_seconds:
            self.state, self._trial = HALF_OPEN, False
        if self.state == HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def record(self, ok: bool) -> None:
        now = self.clock()
        if self.state == HALF_OPEN:
            if ok:
                self.state = CLOSED
                self._calls.clear()
                self._failures = 0
            else:
                self._open(now)
            return
        self._calls.append((now, ok))
        self._failures += not ok
        self._prune(now)
        if (
            self.state == CLOSED
            and self._failures
            and len(self._calls) >= self.min_calls
            and self._failures / len(self._calls) >= self.error_rate
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self._trial = OPEN, now, False
        self.trips += 1
        self._calls.clear()
        self._failures = 0

    @property
    def retry_after(self) -> float:
        return max(0.0, self.reset_seconds - (self.clock() - self.opened_at))
