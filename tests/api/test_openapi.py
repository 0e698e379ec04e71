"""The OpenAPI description: committed file, builder and live routes agree; fuzzing it finds no 5xx.

The fuzz run uses schemathesis on the committed document against a real
server on 127.0.0.1, with a policy whose rate limits are raised (built here)
so the generated calls reach the engine instead of stopping at 429.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api import create_api
from app.api.feedback import JsonlLinkPublisher
from app.api.openapi import DOCUMENT_PATH, build_document, render
from app.policy import Limit, Policy, RateLimitPolicy
from tests.support.http_api import ROLE_TOKENS, Client, make_view, running

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / DOCUMENT_PATH
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def test_committed_document_is_what_the_builder_makes() -> None:
    committed = DOCUMENT.read_text(encoding="utf-8")
    assert yaml.safe_load(committed) == build_document(), (
        f"{DOCUMENT_PATH} is stale: run python -m app.api.openapi > {DOCUMENT_PATH}")
    assert committed == render()


def test_documented_operations_are_exactly_the_routes(view, policy, tokens) -> None:
    app = create_api(view, policy, tokens)
    served = {(r.resource.canonical, r.method.lower()) for r in app.router.routes()
              if r.method not in ("*", "HEAD")}
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in METHODS}
    assert documented == served


def test_every_v1_operation_requires_the_bearer_token_and_documents_refusals() -> None:
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}], (path, method)
                assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)
            else:
                assert operation["security"] == [], (path, method)


def roomy(policy: Policy) -> Policy:
    """The real policy with limits high enough that fuzzing is never rate limited."""
    limits = policy.rate_limits
    return policy.model_copy(update={"rate_limits": RateLimitPolicy(
        max_body_bytes=limits.max_body_bytes,
        default=Limit(per_minute=100_000, timeout_seconds=limits.default.timeout_seconds),
        actions={name: Limit(per_minute=100_000, timeout_seconds=lim.timeout_seconds)
                 for name, lim in limits.actions.items()},
    )})


@pytest.fixture(scope="module")
def fuzz_server(policy: Policy, tokens, tmp_path_factory) -> Iterator[Client]:
    relaxed = roomy(policy)
    links = JsonlLinkPublisher(tmp_path_factory.mktemp("fuzz") / "verdicts.jsonl")
    with running(create_api(make_view(relaxed), relaxed, tokens, links=links)) as client:
        yield client


schema = schemathesis.openapi.from_path(DOCUMENT)
TOKEN_FOR = {
    "/v1/tools/incident_intelligence": ROLE_TOKENS["agent_cto"],
    "/v1/gates/recurrence_watch": ROLE_TOKENS["agent_release"],
    "/v1/learning/velocity": ROLE_TOKENS["agent_viewer"],
    "/v1/feedback/links": ROLE_TOKENS["agent_oncall"],
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_fuzzed_calls_never_fail_on_the_server_side(case, fuzz_server: Client) -> None:
    headers = {}
    token = TOKEN_FOR.get(case.path)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = case.call(base_url=fuzz_server.base, headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    assert response.status_code < 500
