"""What to do with a follow-up record, and after each delivery attempt. Pure: no I/O.

A record is delivered at most once per dedupe key: a key already in the
delivered set is skipped. An attempt either succeeds (2xx), fails in a way a
retry may fix (a timeout, no connection, 408, 425, 429, 5xx) or fails for good
(any other status: the receiver refuses this body). Retries wait an
exponential backoff; after ``max_attempts`` the follow-up is dead-lettered
with the last failure as its reason. Every outcome but a retry lets the
consumer commit past the record.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from app.contracts import FollowUp

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 425, 429})
"""Client-error statuses that mean "not now" rather than "never"."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one follow-up before dead-lettering it."""

    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max attempts must be at least 1 (got {self.max_attempts})")
        if self.backoff_seconds < 0 or self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("backoff must be >= 0 and not above its maximum")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout must be positive (got {self.timeout_seconds})")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.backoff_max_seconds)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to: an HTTP status, or ``None`` with the error (timeout…)."""

    status: int | None
    detail: str

    @property
    def kind(self) -> Literal["delivered", "retryable", "permanent"]:
        if self.status is None:
            return "retryable"
        if 200 <= self.status < 300:
            return "delivered"
        if self.status >= 500 or self.status in RETRYABLE_STATUSES:
            return "retryable"
        return "permanent"


@dataclass(frozen=True)
class Deliver:
    """Attempt delivery of this follow-up."""

    follow_up: FollowUp

    @property
    def dedupe_key(self) -> str:
        return self.follow_up.meta.dedupe_key


@dataclass(frozen=True)
class Skip:
    """Already delivered: commit past it without sending it again."""

    dedupe_key: str


@dataclass(frozen=True)
class DeadLetter:
    """Send the record to the dead-letter topic with ``reason``, then commit past it."""

    reason: str


@dataclass(frozen=True)
class Delivered:
    """Remember the key (durably), then commit past the record."""

    dedupe_key: str


@dataclass(frozen=True)
class Retry:
    """Wait ``delay`` seconds, then make attempt number ``attempt``."""

    attempt: int
    delay: float


RecordAction = Deliver | Skip | DeadLetter
AttemptAction = Delivered | Retry | DeadLetter


def on_record(value: bytes | None, delivered: Set[str]) -> RecordAction:
    """The first decision on a record: deliver it, skip it, or dead-letter it as unreadable."""
    if value is None:
        return DeadLetter("not a follow-up: empty record (no value)")
    try:
        follow_up = FollowUp.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return DeadLetter(f"not a follow-up: {where}: {first['msg']}")
    key = follow_up.meta.dedupe_key
    return Skip(key) if key in delivered else Deliver(follow_up)


def on_attempt(key: str, attempt: int, result: AttemptResult,
               retry: RetryPolicy) -> AttemptAction:
    """The decision after attempt number ``attempt`` (1-based) of delivering ``key``."""
    kind = result.kind
    if kind == "delivered":
        return Delivered(key)
    if kind == "permanent":
        return DeadLetter(f"delivery refused: {result.detail}")
    if attempt >= retry.max_attempts:
        return DeadLetter(f"delivery failed after {attempt} attempts: {result.detail}")
    return Retry(attempt + 1, retry.backoff(attempt))
