from __future__ import annotations

import pytest

from app.policy import Policy, load_policy
from tests.support.repository import POLICY_DIR


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_DIR)
