"""Refusals: 401, 400, 404, 405, 413, 429 (Retry-After), 503 and 504, never a traceback."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.api import InMemoryLiveView, create_api
from app.api.live import Query
from app.contracts import event_from_obj
from app.policy import Limit, Policy, RateLimitPolicy
from tests.support.api_history import history
from tests.support.http_api import ROLE_TOKENS, Client, FakeClock, as_of, running

V1 = [("POST", "/v1/tools/incident_intelligence", {"action": "recurrence"}),
      ("POST", "/v1/gates/recurrence_watch", {"service": "gateway"}),
      ("GET", "/v1/learning/velocity", None),
      ("POST", "/v1/feedback/links", {"incident_id": "inc_gw_1",
                                      "related_incident_id": "inc_gw_2", "verdict": "related"})]


REPO = str(Path(__file__).resolve().parents[2])
"""The checkout's own path: a response that names it leaks where the code lives."""


def assert_clean(body: bytes) -> None:
    """No stack trace or Python internals ever reach a client."""
    for needle in (b"Traceback", b'File "', b"Error:", REPO.encode(), b"site-packages"):
        assert needle not in body, body


def _view_of(cls: type[InMemoryLiveView], policy: Policy) -> InMemoryLiveView:
    return cls(policy, [event_from_obj(e) for e in history()], as_of=as_of())


# ------------------------------------------------------------------------------ 401


@pytest.mark.parametrize(("method", "path", "body"), V1)
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Basic abc",
                                           "Bearer not-a-known-token-at-all", "token x"])
def test_missing_or_unknown_token_is_401(client: Client, method, path, body,
                                         authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = client.request(method, path, json=body, headers=headers)
    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_unauthenticated_caller_learns_nothing_about_the_body(client: Client) -> None:
    reply = client.request("POST", "/v1/tools/incident_intelligence", body=b"{oops")
    assert reply.status == 401


def test_scheme_is_case_insensitive(client: Client) -> None:
    reply = client.request("POST", "/v1/tools/incident_intelligence",
                           json={"action": "recurrence"},
                           headers={"Authorization": f"bearer {ROLE_TOKENS['agent_viewer']}"})
    assert reply.status == 200


# ------------------------------------------------------------------------------ 400


BAD_TOOL_CALLS: list[tuple[bytes, str, str]] = [
    (b"{not json", "invalid_request", "not JSON"),
    (b"", "invalid_request", "empty"),
    (b"[1, 2]", "invalid_request", "JSON object"),
    (b'"correlate"', "invalid_request", "JSON object"),
    (b'{"action": "explode"}', "invalid_request", "unknown action 'explode'"),
    (b"{}", "invalid_request", "unknown action None"),
    (b'{"action": "gate", "service": "gateway"}', "invalid_request",
     "/v1/gates/recurrence_watch"),
    (b'{"action": "correlate"}', "invalid_request", "incident_id"),
    (b'{"action": "correlate", "incident_id": ""}', "invalid_request", "incident_id"),
    (b'{"action": "recurrence", "window_days": 0}', "invalid_request", "window_days"),
    (b'{"action": "recurrence", "window_days": "seven"}', "invalid_request", "window_days"),
    (b'{"action": "recurrence", "surprise": 1}', "invalid_request", "surprise"),
    (b'{"action": "buckets", "tool": "other_tool"}', "invalid_request", "tool"),
    (b'{"action": "weekly_digest", "week": "2026-W8"}', "invalid_request", "week"),
    (b'{"action": "weekly_digest", "week": "2026-W60"}', "invalid_request", "week"),
    (b'{"action": "correlate", "incident_id": "x", "append_note": "perhaps"}',
     "invalid_request", "append_note"),
]


@pytest.mark.parametrize(("body", "code", "needle"), BAD_TOOL_CALLS)
def test_bad_tool_calls_are_400_with_a_message(client: Client, body: bytes, code: str,
                                               needle: str) -> None:
    reply = client.request("POST", "/v1/tools/incident_intelligence", body=body,
                           token=ROLE_TOKENS["agent_cto"])
    assert reply.status == 400, reply.body
    assert reply.error["code"] == code
    assert needle in reply.error["message"]
    assert_clean(reply.body)


@pytest.mark.parametrize(("body", "code", "needle"), [
    (b'{"action": "correlate", "incident_id": "x"}', "invalid_request", "only"),
    (b'{"profile": "prod"}', "invalid_request", "service"),
    (b'{"service": "gateway", "profile": "moon"}', "invalid_argument", "moon"),
    (b'{"service": "gateway", "recurrence_watch_windows_days": []}', "invalid_request",
     "recurrence_watch_windows_days"),
    (b"null", "invalid_request", "JSON object"),
])
def test_bad_gate_calls_are_400(client: Client, body: bytes, code: str, needle: str) -> None:
    reply = client.request("POST", "/v1/gates/recurrence_watch", body=body,
                           token=ROLE_TOKENS["agent_release"])
    assert reply.status == 400, reply.body
    assert reply.error["code"] == code
    assert needle in reply.error["message"] or code == "invalid_request"
    assert_clean(reply.body)


def test_gate_accepts_the_explicit_action_too(client: Client) -> None:
    implicit = client.gate({"service": "gateway"})
    explicit = client.gate({"action": "gate", "service": "gateway"})
    assert implicit.status == explicit.status == 200
    assert implicit.json() == explicit.json()


def test_unknown_incident_is_404_with_the_engines_code(client: Client) -> None:
    reply = client.tool({"action": "correlate", "incident_id": "inc_nobody"})
    assert reply.status == 404
    assert reply.error["code"] == "unknown_incident"
    assert "inc_nobody" in reply.error["message"]


def test_unknown_route_and_wrong_method_answer_json(client: Client) -> None:
    missing = client.request("GET", "/v1/nothing-here")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    wrong = client.request("GET", "/v1/tools/incident_intelligence",
                           token=ROLE_TOKENS["agent_cto"])
    assert wrong.status == 405 and wrong.error["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"
    delete = client.request("DELETE", "/v1/learning/velocity")
    assert delete.status == 405 and delete.headers["Allow"] == "GET, HEAD"


# ------------------------------------------------------------------------------ 413


def test_body_over_the_policy_limit_is_413(client: Client, policy: Policy) -> None:
    limit = policy.rate_limits.max_body_bytes
    padded = b'{"action": "recurrence"}' + b" " * (limit + 1 - 24)
    assert len(padded) == limit + 1
    reply = client.request("POST", "/v1/tools/incident_intelligence", body=padded,
                           token=ROLE_TOKENS["agent_cto"])
    assert reply.status == 413
    assert reply.error["code"] == "payload_too_large"
    assert str(limit) in reply.error["message"]


def test_body_of_exactly_the_limit_is_read(client: Client, policy: Policy) -> None:
    limit = policy.rate_limits.max_body_bytes
    exact = b'{"action": "recurrence"}' + b" " * (limit - 24)
    assert len(exact) == limit
    reply = client.request("POST", "/v1/tools/incident_intelligence", body=exact,
                           token=ROLE_TOKENS["agent_cto"])
    assert reply.status == 200


def test_chunked_body_without_length_is_cut_at_the_limit(client: Client,
                                                          policy: Policy) -> None:
    big = b'{"action": "recurrence", "pad": "' + b"x" * policy.rate_limits.max_body_bytes + b'"}'
    reply = client.request("POST", "/v1/gates/recurrence_watch", body=big, chunked=True,
                           token=ROLE_TOKENS["agent_release"])
    assert reply.status == 413


# ------------------------------------------------------------------------------ 429


def _metric(client: Client, name: str) -> str:
    text = client.request("GET", "/metrics").body.decode()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


def test_over_the_limit_is_429_with_retry_after(client: Client, clock: FakeClock,
                                                policy: Policy) -> None:
    per_minute = policy.rate_limits.for_action("correlate").per_minute
    call = {"action": "correlate", "incident_id": "inc_gw_2"}
    for i in range(per_minute):
        assert client.tool(call, role="agent_oncall").status == 200, i
        clock.advance(1)
    refused = client.tool(call, role="agent_oncall")
    assert refused.status == 429
    assert refused.error["code"] == "rate_limited"
    # The first call was per_minute seconds ago: it leaves the window in 60 - per_minute s.
    assert refused.headers["Retry-After"] == str(60 - per_minute)
    # Other tokens and other actions have their own windows.
    assert client.tool(call, role="agent_cto").status == 200
    assert client.tool({"action": "buckets"}, role="agent_oncall").status == 200
    clock.advance(60 - per_minute - 0.5)
    assert client.tool(call, role="agent_oncall").status == 429
    clock.advance(0.5)
    assert client.tool(call, role="agent_oncall").status == 200  # the first call aged out
    assert client.tool(call, role="agent_oncall").status == 429  # the second has not
    assert 'incident_intel_http_rate_limited_total{action="correlate"} 3' in _metric(
        client, "incident_intel_http_rate_limited_total")


@pytest.mark.parametrize("action", ["recurrence", "weekly_digest"])
def test_each_action_has_its_own_policy_limit(client: Client, policy: Policy,
                                              action: str) -> None:
    per_minute = policy.rate_limits.for_action(action).per_minute
    statuses = [client.tool({"action": action}, role="agent_oncall").status
                for _ in range(per_minute + 1)]
    assert statuses == [200] * per_minute + [429]


def test_refused_calls_do_not_use_up_the_quota(client: Client, policy: Policy) -> None:
    per_minute = policy.rate_limits.for_action("weekly_digest").per_minute
    for _ in range(per_minute + 2):  # viewer may not digest: 403, never counted
        assert client.tool({"action": "weekly_digest"}, role="agent_viewer").status == 403
    for _ in range(per_minute + 2):  # invalid calls: 400, never counted
        assert client.tool({"action": "weekly_digest", "week": "x"},
                           role="agent_oncall").status == 400
    assert client.tool({"action": "weekly_digest"}, role="agent_oncall").status == 200


# ------------------------------------------------------------------------------ 504


def _tight(policy: Policy, seconds: float) -> Policy:
    """The real policy with every time limit set to ``seconds``."""
    limits = policy.rate_limits
    return policy.model_copy(update={"rate_limits": RateLimitPolicy(
        max_body_bytes=limits.max_body_bytes,
        default=Limit(per_minute=limits.default.per_minute, timeout_seconds=seconds),
        actions={name: Limit(per_minute=lim.per_minute, timeout_seconds=seconds)
                 for name, lim in limits.actions.items()},
    )})


class StuckView(InMemoryLiveView):
    """Engine reads and digests that block until the test releases them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    async def read(self, query: Query) -> Any:
        def slow(engine, as_of):  # type: ignore[no-untyped-def]
            self.release.wait(10)
            return query(engine, as_of)

        return await super().read(slow)

    async def run_digest(self, request):  # type: ignore[no-untyped-def]
        await asyncio.to_thread(self.release.wait, 10)
        return await super().run_digest(request)


@pytest.mark.parametrize("call", [{"action": "correlate", "incident_id": "inc_gw_1"},
                                  {"action": "buckets"},
                                  {"action": "weekly_digest"}])
def test_slow_answers_are_cut_off_with_504(policy: Policy, tokens, call) -> None:
    tight = _tight(policy, 0.05)
    view = _view_of(StuckView, tight)
    assert isinstance(view, StuckView)
    with running(create_api(view, tight, tokens)) as client:
        try:
            reply = client.tool(call)
        finally:
            view.release.set()
        assert reply.status == 504, reply.body
        assert reply.error["code"] == "timeout"
        assert call["action"] in reply.error["message"]
    assert view.digest_runs == 0  # the abandoned digest never completed inside the call


# ------------------------------------------------------------------------------ 503


class BrokenView(InMemoryLiveView):
    async def read(self, query: Query) -> Any:
        raise RuntimeError(f"secret internal detail {REPO}/app/x.py")


class RecoveringView(InMemoryLiveView):
    @property
    def ready(self) -> bool:
        return False


def test_unexpected_errors_are_503_without_detail(policy: Policy, tokens, caplog) -> None:
    with running(create_api(_view_of(BrokenView, policy), policy, tokens)) as client:
        reply = client.tool({"action": "recurrence"})
        page = client.request("GET", "/")
    assert reply.status == 503
    assert reply.error["code"] == "internal"
    assert b"secret" not in reply.body
    assert_clean(reply.body)
    assert page.status == 503 and b"secret" not in page.body
    assert b'http-equiv="refresh"' in page.body  # the wall screen keeps trying
    assert "secret internal detail" in caplog.text  # the detail is in the log only


def test_not_ready_answers_503_and_health_says_so(policy: Policy, tokens) -> None:
    with running(create_api(_view_of(RecoveringView, policy), policy, tokens)) as client:
        reply = client.tool({"action": "recurrence"})
        assert reply.status == 503 and reply.error["code"] == "not_ready"
        assert client.velocity().status == 503
        health, ready = client.request("GET", "/healthz"), client.request("GET", "/readyz")
        assert health.status == ready.status == 503 and health.body == ready.body
        assert health.json() == {"status": "not_ready", "waiting_for": ["replica_recovering"]}
        assert client.request("GET", "/livez").status == 200
        page = client.request("GET", "/")
        assert page.status == 200 and b'id="recovering"' in page.body
        assert b'id="buckets"' not in page.body


def test_error_bodies_are_canonical_json(client: Client) -> None:
    reply = client.tool({"action": "explode"})
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body == orjson.dumps(reply.json())
