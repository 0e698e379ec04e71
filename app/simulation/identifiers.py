"""Identifiers of simulated things, drawn from a seeded ``random.Random``."""

from __future__ import annotations

import hashlib
from datetime import datetime
from random import Random


def hex_token(rng: Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def session_id(rng: Random) -> str:
    return f"sess-{hex_token(rng, 8)}"


def actor_id(rng: Random) -> str:
    return f"usr-{hex_token(rng, 6)}"


def trace_id(rng: Random) -> str:
    return hex_token(rng, 16)


def incident_id(rng: Random, started_at: datetime) -> str:
    """``inc_YYYYMMDD_HHMM_xxxxxx`` like the incident store's ids."""
    return f"inc_{started_at:%Y%m%d_%H%M}_{hex_token(rng, 6)}"


def version_tag(rng: Random, at: datetime) -> str:
    return f"v{at:%Y.%m.%d}-{rng.randint(1, 9)}"


def digest(*parts: object) -> str:
    """SHA-256 hex of the parts joined by ``|`` (stable across runs and machines)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def alert_fingerprint(alert: str, service: str, env: str = "prod") -> str:
    """Like an alert manager's: the same rule on the same target gives the same value."""
    return digest("alert", alert, service, env)[:16]
