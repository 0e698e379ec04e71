"""Letting a ``/v1`` call in: who is calling, may they, and not too often.

The checks run in this order, each with its own refusal: the bearer token
(401), the role's entitlements (403), the token's engine reads in flight
(429), the rate limit (429). Only calls that pass the earlier checks count
against the rate limit, so a refused call never uses up a caller's quota, and
the limiter's memory is bounded by the number of configured tokens times the
number of actions. A call that reaches the engine counts whatever the engine
answers (200, or a 400/404 about its arguments): it cost an engine read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web

from app.policy import RbacPolicy

from .access import decide
from .errors import ApiError
from .metrics import ApiMetrics
from .ratelimit import InFlightLimiter, SlidingWindowLimiter
from .tokens import TokenRoles, digest

__all__ = ["Admission", "Caller"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="incident-intel"'}


@dataclass(frozen=True)
class Caller:
    role: str
    key: str
    """The token's digest: what the rate limiter counts by (never the token)."""


class Admission:
    """The checks between a request and the engine, with their counters."""

    def __init__(self, tokens: TokenRoles, rbac: RbacPolicy, limiter: SlidingWindowLimiter,
                 metrics: ApiMetrics, in_flight: InFlightLimiter) -> None:
        self.tokens = tokens
        self.rbac = rbac
        self.limiter = limiter
        self.metrics = metrics
        self.in_flight = in_flight

    def authenticate(self, request: web.Request) -> Caller:
        """The caller of ``Authorization: Bearer <token>``, or 401."""
        header = request.headers.get("Authorization")
        if not header:
            raise ApiError("unauthorized", "missing header Authorization: Bearer <token>",
                           _CHALLENGE)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        # Bearer tokens are ASCII; anything else (say, invalid UTF-8, which arrives
        # as surrogates) is refused here rather than failing later while hashing.
        if scheme.lower() != "bearer" or not token or not header.isascii():
            raise ApiError("unauthorized", "Authorization must be 'Bearer <token>'", _CHALLENGE)
        role = self.tokens.role_for(token)
        if role is None:
            raise ApiError("unauthorized", "unknown token", _CHALLENGE)
        return Caller(role=role, key=digest(token))

    def authorize(self, caller: Caller, operations: Iterable[str], action: str) -> None:
        """403 naming the missing entitlement unless the role holds all of them."""
        decision = decide(self.rbac, caller.role, operations)
        if not decision.allowed:
            self.metrics.count_denied(action)
            raise ApiError("forbidden", decision.reason(caller.role))

    @contextlib.contextmanager
    def reading(self, caller: Caller, action: str) -> Iterator[None]:
        """Hold one of the caller's engine-read slots; 429 when all are taken."""
        if not self.in_flight.acquire(caller.key):
            self.metrics.count_rate_limited(action)
            raise ApiError("rate_limited",
                           f"more than {self.in_flight.per_caller} calls in flight for this "
                           "token (engine_reads.per_token); retry when one has answered",
                           {"Retry-After": "1"})
        try:
            yield
        finally:
            self.in_flight.release(caller.key)

    def admit(self, caller: Caller, action: str) -> None:
        """429 with ``Retry-After`` when the caller is over this action's limit."""
        verdict = self.limiter.admit(caller.key, action)
        if not verdict.allowed:
            self.metrics.count_rate_limited(action)
            limit = self.limiter.policy.for_action(action).per_minute
            raise ApiError("rate_limited",
                           f"more than {limit} {action} calls per minute for this token; "
                           f"retry in {verdict.retry_after_header} s",
                           {"Retry-After": verdict.retry_after_header})
