"""Variations of the shipped policy for one test."""

from __future__ import annotations

from typing import Any

from app.policy import Policy


def tweak(policy: Policy, section: str, **changes: Any) -> Policy:
    """A copy of ``policy`` with fields of one ``incident_intelligence.yml`` section changed."""
    intel = policy.intel
    updated = getattr(intel, section).model_copy(update=changes)
    return policy.model_copy(update={"intel": intel.model_copy(update={section: updated})})


def default_policy() -> Policy:
    """The repository's shipped policy (``policy/``)."""
    from app.policy import load_policy
    from tests.support.repository import POLICY_DIR

    return load_policy(POLICY_DIR)
