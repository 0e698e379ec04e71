"""``POST /v1/feedback/links``: a verdict is published (here to a JSON-lines file, as
``incident-intel serve --verdicts`` does) before the API answers, or refused clearly."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.api import create_api
from app.api.feedback import JsonlLinkPublisher
from app.contracts import LinkVerdict, decode_event
from app.policy import Limit, Policy, RateLimitPolicy
from tests.support.api_history import AS_OF
from tests.support.http_api import ROLE_TOKENS, Client, FakeClock, make_view, running
from tests.support.repository import POLICY_DIR

ROOT = Path(__file__).resolve().parents[2]
LINKS = "/v1/feedback/links"
NOW = datetime(2026, 2, 23, 9, 30, tzinfo=UTC)
GOOD = {"incident_id": "inc_gw_3", "related_incident_id": "inc_gw_4", "verdict": "related"}


def post(client: Client, body: Any, role: str = "agent_oncall") -> Any:
    return client.request("POST", LINKS, json=body, token=ROLE_TOKENS[role])


def lines(path: Path) -> list[LinkVerdict]:
    if not path.exists():
        return []
    events = [decode_event(line) for line in path.read_bytes().splitlines()]
    assert all(isinstance(e, LinkVerdict) for e in events)
    return events  # type: ignore[return-value]


@pytest.fixture()
def stamped(policy: Policy, tokens, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server whose wall clock is :data:`NOW`, publishing to a file; (client, file)."""
    path = tmp_path / "v.jsonl"
    app = create_api(make_view(policy), policy, tokens, clock=FakeClock(),
                     links=JsonlLinkPublisher(path), wall_clock=lambda: NOW)
    with running(app) as client:
        yield client, path


def test_a_verdict_is_recorded_before_the_answer(stamped) -> None:
    client, path = stamped
    reply = post(client, GOOD)
    assert reply.status == 202, reply.body
    answer = reply.json()
    assert answer["status"] == "published" and answer["topic"] == "learning.events"
    (recorded,) = lines(path)
    assert answer["event"] == orjson.loads(recorded.model_dump_json())
    assert recorded.type == "incident.linked" and recorded.by == "agent_oncall"
    assert recorded.occurred_at == NOW and re.fullmatch(r"link-[0-9a-f]{32}", recorded.event_id)
    assert (recorded.incident_id, recorded.related_incident_id, recorded.verdict) == (
        "inc_gw_3", "inc_gw_4", "related")


def test_the_callers_id_time_and_name_are_kept(stamped) -> None:
    client, path = stamped
    body = {**GOOD, "verdict": "unrelated", "by": "ana", "event_id": "ana-1",
            "occurred_at": "2026-02-23T09:00:00+01:00"}
    assert post(client, body).status == 202
    assert post(client, body).status == 202  # a retry: the same event again
    first, second = lines(path)
    assert first == second
    assert (first.event_id, first.by, first.verdict) == ("ana-1", "ana", "unrelated")
    assert first.occurred_at == datetime(2026, 2, 23, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("body", "status", "code", "needle"), [
    ({**GOOD, "verdict": "maybe"}, 400, "invalid_request", "verdict"),
    ({**GOOD, "related_incident_id": "inc_gw_3"}, 400, "invalid_request", "another incident"),
    ({k: v for k, v in GOOD.items() if k != "verdict"}, 400, "invalid_request", "verdict"),
    ({**GOOD, "extra": 1}, 400, "invalid_request", "extra"),
    ({**GOOD, "by": "x" * 121}, 400, "invalid_request", "by"),
    ([GOOD], 400, "invalid_request", "JSON object"),
    ({**GOOD, "occurred_at": "2026-02-23T12:00:00Z"}, 400, "invalid_argument",
     "max_future_skew_minutes"),
    ({**GOOD, "related_incident_id": "inc_nobody"}, 404, "unknown_incident", "inc_nobody"),
    ({**GOOD, "incident_id": "inc_after_as_of"}, 404, "unknown_incident", "inc_after_as_of"),
])
def test_bad_verdicts_are_refused_and_not_recorded(stamped, body, status, code,
                                                   needle) -> None:
    client, path = stamped
    reply = post(client, body)
    assert reply.status == status, reply.body
    assert reply.error["code"] == code and needle in reply.error["message"]
    assert lines(path) == []


def test_the_role_needs_the_link_feedback_entitlement(stamped) -> None:
    client, path = stamped
    reply = post(client, GOOD, role="agent_viewer")
    assert reply.status == 403
    assert "tools.oncall.link_feedback" in reply.error["message"]
    assert lines(path) == []


def test_verdicts_have_their_own_rate_limit(stamped, policy: Policy) -> None:
    client, _ = stamped
    per_minute = policy.rate_limits.for_action("link_feedback").per_minute
    statuses = [post(client, GOOD).status for _ in range(per_minute + 1)]
    assert statuses == [202] * per_minute + [429]
    # Other actions keep their own quota.
    assert client.tool({"action": "correlation_quality"}, role="agent_oncall").status == 200


def test_a_store_that_cannot_write_answers_503_with_retry_after(policy: Policy, tokens,
                                                                tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app = create_api(make_view(policy), policy, tokens,
                     links=JsonlLinkPublisher(blocker / "v.jsonl"))
    with running(app) as client:
        reply = post(client, GOOD)
    assert reply.status == 503
    assert reply.error["code"] == "unavailable" and "not published" in reply.error["message"]
    assert int(reply.headers["Retry-After"]) >= 1


class NeverAcknowledged:
    """A broker that takes the record and never acknowledges it."""

    async def publish_link(self, event: LinkVerdict) -> None:
        await asyncio.Event().wait()


def test_no_acknowledgement_within_the_time_limit_is_503(policy: Policy, tokens) -> None:
    limits = policy.rate_limits
    tight = policy.model_copy(update={"rate_limits": RateLimitPolicy(
        default=limits.default,
        actions={**limits.actions, "link_feedback": Limit(per_minute=5, timeout_seconds=0.2)})})
    with running(create_api(make_view(tight), tight, tokens, links=NeverAcknowledged())) as c:
        reply = post(c, GOOD)
    assert reply.status == 503 and reply.error["code"] == "unavailable"
    assert "did not acknowledge" in reply.error["message"]
    assert reply.headers["Retry-After"] == "1"


def test_a_server_without_a_store_says_so(policy: Policy, tokens) -> None:
    with running(create_api(make_view(policy), policy, tokens)) as client:
        reply = post(client, GOOD)
    assert reply.status == 503 and reply.error["code"] == "unavailable"
    assert "--verdicts" in reply.error["message"]
    assert "Retry-After" not in reply.headers


# ------------------------------------------------------------------- incident-intel serve


def test_serve_records_verdicts_for_the_next_start(events_file: Path, tmp_path: Path) -> None:
    """``serve --verdicts FILE`` appends each verdict; the running server answers as of its
    files, and the next start (or the tool) reads FILE as events."""
    verdicts = tmp_path / "verdicts.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "INTEL_API_TOKENS": json.dumps({ROLE_TOKENS["agent_oncall"]: "agent_oncall"})}
    env.pop("INTEL_API_TOKENS_FILE", None)
    call = {"action": "correlate", "incident_id": "inc_gw_3"}

    def serve() -> tuple[subprocess.Popen[str], Client]:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--events", str(events_file),
             "--policy", str(POLICY_DIR), "--as-of", AS_OF, "--port", "0",
             "--verdicts", str(verdicts)],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        out: queue.Queue[str] = queue.Queue()
        assert process.stderr is not None
        threading.Thread(target=lambda: [out.put(x) for x in process.stderr],
                         daemon=True).start()
        while True:
            line = out.get(timeout=30)
            match = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
            if match:
                return process, Client(match.group(1))

    def verdicts_of(client: Client) -> dict[str, str | None]:
        reply = client.tool(call, role="agent_oncall")
        return {r["incident_id"]: r.get("verdict") for r in reply.json()["related"]}

    process, client = serve()
    try:
        assert verdicts_of(client)["inc_gw_4"] is None
        body = {**GOOD, "occurred_at": "2026-02-23T07:00:00Z"}  # inside --as-of
        assert post(client, body).status == 202
        assert verdicts_of(client)["inc_gw_4"] is None  # answers as of its files
    finally:
        process.terminate()
        process.wait(10)
    assert [e.verdict for e in lines(verdicts)] == ["related"]
    process, client = serve()
    try:
        assert verdicts_of(client)["inc_gw_4"] == "related"
    finally:
        process.terminate()
        process.wait(10)
