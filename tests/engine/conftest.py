from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.policy import Policy, load_policy

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_DIR)


def tweak(policy: Policy, section: str, **changes: Any) -> Policy:
    """A copy of ``policy`` with fields of one ``incident_intelligence.yml`` section changed."""
    intel = policy.intel
    updated = getattr(intel, section).model_copy(update=changes)
    return policy.model_copy(update={"intel": intel.model_copy(update={section: updated})})
