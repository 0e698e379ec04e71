"""The ``alerts`` action over HTTP, its own rate limit, and the dashboard's alert noise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.api import InMemoryLiveView, TokenRoles, create_api
from app.contracts import AlertsRequest, dump_json, event_from_obj
from app.intel.engine import IntelEngine
from app.policy import Policy
from tests.support.api_history import history
from tests.support.builders import at, stamp
from tests.support.http_api import Client, FakeClock, as_of, running

HOSTILE = '<script>alert("x")</script>|*_'


def transition(event_id: str, fingerprint: str, minutes: float, to_state: str,
               incident_id: str | None = None, service: str = "gateway") -> dict[str, Any]:
    return {"event_id": event_id, "type": "alert.transition",
            "occurred_at": stamp(at(days=6, minutes=minutes)),
            "alert": {"alert_id": f"al-{event_id}", "fingerprint": fingerprint,
                      "service": service, "kind": "latency", "severity": "P3"},
            "to_state": to_state, "incident_id": incident_id}


def noisy_history() -> list[dict[str, Any]]:
    """The API history plus a flapping alert and one that keeps firing with no incident."""
    events = history()
    events += [transition(f"flap-{i}", f"fp-flap-{HOSTILE}", 5 * i,
                          "firing" if i % 2 == 0 else "resolved", incident_id="inc_gw_1")
               for i in range(6)]
    events += [transition(f"lonely-{i}", "fp-lonely", -600 * i, "firing", service=HOSTILE)
               for i in range(4)]
    return events


@pytest.fixture()
def noisy(policy: Policy, tokens: TokenRoles, clock: FakeClock) -> Iterator[
    tuple[Client, InMemoryLiveView]
]:
    view = InMemoryLiveView(policy, [event_from_obj(e) for e in noisy_history()], as_of=as_of())
    with running(create_api(view, policy, tokens, clock=clock)) as client:
        yield client, view


def test_alerts_answer_is_the_engines_answer(noisy, policy: Policy) -> None:
    client, _ = noisy
    reply = client.tool({"action": "alerts", "window_days": 7}, role="agent_viewer")
    assert reply.status == 200, reply.body
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(e) for e in noisy_history() if e["occurred_at"] <= stamp(
        as_of()))
    expected = engine.alert_report(AlertsRequest(action="alerts", window_days=7), as_of())
    assert reply.body == dump_json(expected)
    assert reply.json()["flapping"] == [f"fp-flap-{HOSTILE}"]
    assert [c["fingerprint"] for c in reply.json()["promote_candidates"]] == ["fp-lonely"]


@pytest.mark.parametrize("body, field", [
    ({"action": "alerts", "window_days": 0}, "window_days"),
    ({"action": "alerts", "window_days": 3661}, "window_days"),
    ({"action": "alerts", "service": ""}, "service"),
    ({"action": "alerts", "since": "yesterday"}, "since"),
])
def test_bad_alerts_arguments_are_400_naming_the_field(noisy, body, field) -> None:
    client, _ = noisy
    reply = client.tool(body, role="agent_viewer")
    assert reply.status == 400
    assert reply.error["code"] == "invalid_request"
    assert reply.error["message"].startswith(f"{field}: ")


def test_alerts_have_their_own_rate_limit(noisy, policy: Policy) -> None:
    client, _ = noisy
    limit = policy.rate_limits.for_action("alerts").per_minute
    assert "alerts" in policy.rate_limits.actions
    for _ in range(limit):
        assert client.tool({"action": "alerts"}, role="agent_viewer").status == 200
    refused = client.tool({"action": "alerts"}, role="agent_viewer")
    assert refused.status == 429 and refused.error["code"] == "rate_limited"
    # Other read actions of the same token keep their own budget.
    assert client.tool({"action": "recurrence"}, role="agent_viewer").status == 200


def test_dashboard_lists_flapping_alerts_and_promote_candidates_escaped(noisy) -> None:
    client, _ = noisy
    page = client.request("GET", "/").body.decode()
    flapping = page.split('<table id="flapping-alerts">')[1].split("</table>")[0]
    promote = page.split('<table id="promote-candidates">')[1].split("</table>")[0]
    assert "fp-flap-&lt;script&gt;" in flapping and "fp-lonely" not in flapping
    assert "fp-lonely" in promote and "fp-flap" not in promote
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in promote
    assert "<script>" not in page
