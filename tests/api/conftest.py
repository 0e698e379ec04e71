"""Fixtures of the API tests: the policy, the history, and a fresh server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api import InMemoryLiveView, TokenRoles, create_api
from app.api.feedback import JsonlLinkPublisher
from app.policy import Policy, load_policy
from tests.support.api_history import history
from tests.support.builders import jsonl
from tests.support.http_api import ROLE_TOKENS, Client, FakeClock, make_view, running
from tests.support.repository import POLICY_DIR


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_DIR)


@pytest.fixture(scope="session")
def tokens() -> TokenRoles:
    return TokenRoles.of({token: role for role, token in ROLE_TOKENS.items()})


@pytest.fixture(scope="session")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "history.jsonl"
    path.write_bytes(jsonl(history()))
    return path


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def view(policy: Policy) -> InMemoryLiveView:
    return make_view(policy)


@pytest.fixture()
def verdicts_file(tmp_path: Path) -> Path:
    """Where the test server's ``POST /v1/feedback/links`` appends verdicts."""
    return tmp_path / "verdicts.jsonl"


@pytest.fixture()
def client(view: InMemoryLiveView, policy: Policy, tokens: TokenRoles,
           clock: FakeClock, verdicts_file: Path) -> Iterator[Client]:
    """A fresh server (fresh rate limits, fresh view) per test."""
    with running(create_api(view, policy, tokens, clock=clock, metrics=view.metrics,
                            links=JsonlLinkPublisher(verdicts_file))) as c:
        yield c
