"""Levels: a count classified ``none | warn | high`` by a policy threshold.

One rule for every count the engine classifies — recurrence of signatures,
kinds and services, alert firings — kept apart from the modules that count,
so each of them can use it.
"""

from __future__ import annotations

from app.contracts import Level
from app.policy import Threshold


def level(count: int, threshold: Threshold) -> Level:
    """``high`` at or above ``threshold.high``, else ``warn`` at or above ``threshold.warn``."""
    if count >= threshold.high:
        return "high"
    if count >= threshold.warn:
        return "warn"
    return "none"
