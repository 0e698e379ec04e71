"""Variations of the shipped policy for one test."""

from __future__ import annotations

from typing import Any

from app.policy import Policy


def tweak(policy: Policy, section: str, **changes: Any) -> Policy:
    """A copy of ``policy`` with fields of one ``incident_intelligence.yml`` section changed."""
    intel = policy.intel
    updated = getattr(intel, section).model_copy(update=changes)
    return policy.model_copy(update={"intel": intel.model_copy(update={section: updated})})
