"""The pure delivery decisions: skip, deliver, retry with backoff, dead-letter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.delivery.decision import (
    AttemptResult,
    DeadLetter,
    Deliver,
    Delivered,
    Retry,
    RetryPolicy,
    Skip,
    on_attempt,
    on_record,
)
from tests.support.builders import follow_up

POLICY = RetryPolicy(max_attempts=4, backoff_seconds=0.5, backoff_max_seconds=3.0,
                     timeout_seconds=2.0)


def raw(key: str) -> bytes:
    return json.dumps(follow_up(key)).encode()


def test_a_new_key_is_delivered_and_a_known_key_skipped() -> None:
    action = on_record(raw("fu:2026-W08:gateway|error_rate"), {"other"})
    assert isinstance(action, Deliver)
    assert action.dedupe_key == "fu:2026-W08:gateway|error_rate"
    assert on_record(raw("k"), {"k"}) == Skip("k")


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty record"),
    (b"{not json", "not a follow-up"),
    (json.dumps({**follow_up("k"), "meta": {"title": "x"}}).encode(), "meta"),
    (json.dumps(follow_up("k", priority="P9")).encode(), "priority"),
])
def test_a_record_that_is_no_follow_up_is_dead_lettered(value: bytes | None,
                                                         reason: str) -> None:
    action = on_record(value, set())
    assert isinstance(action, DeadLetter)
    assert reason in action.reason


@pytest.mark.parametrize(("status", "kind"), [
    (200, "delivered"), (201, "delivered"), (204, "delivered"),
    (None, "retryable"), (500, "retryable"), (503, "retryable"), (408, "retryable"),
    (429, "retryable"), (400, "permanent"), (401, "permanent"), (404, "permanent"),
    (422, "permanent"), (301, "permanent"),
])
def test_statuses_are_classified(status: int | None, kind: str) -> None:
    assert AttemptResult(status, "x").kind == kind


def _oracle(statuses: list[int | None], policy: RetryPolicy) -> tuple[str, int]:
    """(final outcome, attempts used), from the rules read plainly."""
    for n, status in enumerate(statuses[: policy.max_attempts], 1):
        if status is not None and 200 <= status < 300:
            return "delivered", n
        if status is not None and status < 500 and status not in (408, 425, 429):
            return "refused", n
    return "gave_up", policy.max_attempts


statuses = st.lists(st.sampled_from([None, 200, 204, 400, 404, 408, 429, 500, 502, 503]),
                    min_size=1, max_size=8)


@given(statuses, st.integers(1, 6), st.floats(0, 5), st.floats(0, 10))
def test_attempts_follow_the_rules(answers: list[int | None], max_attempts: int,
                                   backoff: float, extra: float) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, backoff_seconds=backoff,
                         backoff_max_seconds=backoff + extra, timeout_seconds=1.0)
    answers = answers + [503] * max_attempts  # the receiver keeps failing after the script
    attempt, delays = 1, []
    while True:
        decision = on_attempt("k", attempt, AttemptResult(answers[attempt - 1], "d"), policy)
        if not isinstance(decision, Retry):
            break
        assert decision.attempt == attempt + 1
        delays.append(decision.delay)
        attempt = decision.attempt
    outcome, used = _oracle(answers, policy)
    assert attempt == used
    if outcome == "delivered":
        assert decision == Delivered("k")
    else:
        assert isinstance(decision, DeadLetter)
        assert ("refused" in decision.reason) == (outcome == "refused")
        assert (f"after {max_attempts} attempts" in decision.reason) == (outcome == "gave_up")
    assert delays == sorted(delays)
    assert all(d <= policy.backoff_max_seconds for d in delays)
    if delays:
        assert delays[0] == min(backoff, policy.backoff_max_seconds)


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"backoff_seconds": -1}, {"backoff_max_seconds": 0.1},
    {"timeout_seconds": 0},
])
def test_a_retry_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    base = {"max_attempts": 3, "backoff_seconds": 1.0, "backoff_max_seconds": 5.0,
            "timeout_seconds": 1.0}
    with pytest.raises(ValueError):
        RetryPolicy(**{**base, **kwargs})  # type: ignore[arg-type]
