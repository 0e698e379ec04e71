"""The sliding window itself, with a clock moved by hand."""

from __future__ import annotations

import pytest

from app.api.ratelimit import WINDOW_SECONDS, SlidingWindowLimiter, Verdict
from app.policy import Limit, RateLimitPolicy
from tests.support.http_api import FakeClock

POLICY = RateLimitPolicy(default=Limit(per_minute=2, timeout_seconds=1),
                         actions={"correlate": Limit(per_minute=3, timeout_seconds=1)})


def test_limit_per_action_and_default() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(POLICY, clock)
    assert [limiter.admit("t", "correlate").allowed for _ in range(4)] == [True] * 3 + [False]
    assert [limiter.admit("t", "unlisted").allowed for _ in range(3)] == [True, True, False]


def test_window_slides_rather_than_resetting() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(POLICY, clock)
    assert limiter.admit("t", "x").allowed        # t = 0
    clock.advance(50)
    assert limiter.admit("t", "x").allowed        # t = 50
    clock.advance(5)
    refused = limiter.admit("t", "x")             # t = 55: both still inside
    assert not refused.allowed and refused.retry_after == pytest.approx(5)
    clock.advance(5)
    assert limiter.admit("t", "x").allowed        # t = 60: the first left exactly now
    clock.advance(1)
    # A fixed per-minute window would have reset at t = 60; the sliding one still
    # holds the calls of t = 50 and t = 60.
    refused = limiter.admit("t", "x")
    assert not refused.allowed and refused.retry_after == pytest.approx(49)


def test_refusals_are_not_recorded() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(POLICY, clock)
    limiter.admit("t", "x")
    limiter.admit("t", "x")
    for _ in range(100):
        clock.advance(0.5)
        limiter.admit("t", "x")
    clock.advance(WINDOW_SECONDS - 50)
    assert limiter.admit("t", "x").allowed


def test_callers_are_independent() -> None:
    limiter = SlidingWindowLimiter(POLICY, FakeClock())
    for _ in range(2):
        limiter.admit("a", "x")
    assert not limiter.admit("a", "x").allowed
    assert limiter.admit("b", "x").allowed


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"),
                                                  (59.9, "60")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert Verdict(False, seconds).retry_after_header == header
