"""Requests per minute per token and action, as a sliding window.

A fixed window lets a caller send twice the limit across a minute boundary; a
sliding log of accepted requests does not. The clock is a parameter (seconds,
monotonic) so tests move time instead of sleeping. Refused requests are not
logged, so a caller who keeps retrying is let in as soon as a slot frees.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.policy import RateLimitPolicy

__all__ = ["WINDOW_SECONDS", "InFlightLimiter", "SlidingWindowLimiter", "Verdict"]

WINDOW_SECONDS = 60.0
"""The policy counts requests ``per_minute``."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    """Seconds until the oldest request in the window leaves it (0 when allowed)."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, rounded up and at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class SlidingWindowLimiter:
    """Admits at most ``per_minute`` requests of one action per token in any 60 s."""

    def __init__(self, policy: RateLimitPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._log: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, caller: str, action: str) -> Verdict:
        """Record and allow the request, or refuse it with the wait until a slot frees."""
        limit = self.policy.for_action(action).per_minute
        now = self.clock()
        with self._lock:
            times = self._log.setdefault((caller, action), deque())
            while times and times[0] <= now - WINDOW_SECONDS:
                times.popleft()
            if len(times) >= limit:
                return Verdict(False, times[0] + WINDOW_SECONDS - now)
            times.append(now)
            return Verdict(True)


class InFlightLimiter:
    """At most ``per_caller`` engine reads in flight per token, whatever their action.

    The per-minute window bounds how often a token calls; this bounds how much
    of the engine-read pool it holds at once, so one client's slow calls
    cannot take every thread.
    """

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> bool:
        """Take a slot for ``caller``; ``False`` when it already holds all of its slots."""
        with self._lock:
            held = self._held.get(caller, 0)
            if held >= self.per_caller:
                return False
            self._held[caller] = held + 1
            return True

    def release(self, caller: str) -> None:
        with self._lock:
            held = self._held.get(caller, 0) - 1
            if held > 0:
                self._held[caller] = held
            else:
                self._held.pop(caller, None)
