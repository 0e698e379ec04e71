"""Who may post to a receiver: bearer tokens and HMAC signatures, compared in constant time.

Pure functions over the header values and the raw body. Every comparison is
``hmac.compare_digest`` over every configured secret (no early exit on the
first match), so timing tells nothing about which secret, or how much of one,
a request got right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["bearer_token", "grafana_signature_valid", "hmac_hex", "pagerduty_signature_valid",
           "token_matches"]


def hmac_hex(secret: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``secret``."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _any_equal(presented: Sequence[str], expected: Sequence[str]) -> bool:
    matched = False
    for value in presented:
        for wanted in expected:
            matched |= hmac.compare_digest(value.encode("utf-8"), wanted.encode("utf-8"))
    return matched


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when absent or not that form
    (including non-ASCII, which no bearer token is)."""
    if not header or not header.isascii():
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_matches(token: str, tokens: Sequence[str]) -> bool:
    """Whether ``token`` is one of ``tokens``."""
    return _any_equal([token], tokens)


def pagerduty_signature_valid(header: str | None, body: bytes, secrets: Sequence[str]) -> bool:
    """PagerDuty's ``X-PagerDuty-Signature``: ``v1=<hex>``, several comma-separated while a
    secret is rotated; valid when one of them is the HMAC of the body under one secret."""
    if not header or not header.isascii() or not secrets:
        return False
    presented = [part.strip()[3:].lower() for part in header.split(",")
                 if part.strip().startswith("v1=")]
    return _any_equal(presented, [hmac_hex(secret, body) for secret in secrets])


def grafana_signature_valid(signature: str | None, timestamp: str | None, body: bytes,
                            secrets: Sequence[str]) -> bool:
    """Grafana's hex HMAC-SHA256 of the body, or of ``<timestamp>:<body>`` when the
    contact point sends a timestamp header."""
    if not signature or not signature.isascii() or not secrets:
        return False
    if timestamp is not None and not timestamp.isascii():
        return False
    message = body if timestamp is None else timestamp.encode("ascii") + b":" + body
    return _any_equal([signature.strip().lower()], [hmac_hex(s, message) for s in secrets])
