"""Every role against every call: allowed exactly when ``policy/rbac.yml`` says so.

The rules are restated below on purpose. The expectations of the matrix are
computed from this restatement, never from :mod:`app.api.access`; the first
test pins the restatement to the policy file, so a change of the file fails
here until someone decides the new matrix is intended.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.api.access import decide, operations_of
from app.policy import RbacPolicy
from tests.support.http_api import ROLE_TOKENS, Client

READ = "tools.oncall.read"
WRITE = "tools.oncall.incident_write"
GATE = "tools.release.gate"
LINK = "tools.oncall.link_feedback"

# policy/rbac.yml, in words: cto and oncall read and write incidents and judge
# links; monitor holds nothing; release only gates; viewer only reads.
ROLE_HOLDS: dict[str, set[str]] = {
    "agent_cto": {READ, WRITE, LINK},
    "agent_oncall": {READ, WRITE, LINK},
    "agent_monitor": set(),
    "agent_release": {GATE},
    "agent_viewer": {READ},
}
# Reading needs read; the digest writes; appending a note writes on top of
# correlating; the gate needs the release entitlement; velocity and correlation
# quality are reads; a link verdict needs its own entitlement.
ACTION_NEEDS: dict[str, set[str]] = {
    "correlate": {READ},
    "recurrence": {READ},
    "buckets": {READ},
    "alerts": {READ},
    "correlation_quality": {READ},
    "link_feedback": {LINK},
    "weekly_digest": {WRITE},
    "append_note": {WRITE},
    "gate": {GATE},
    "velocity": {READ},
}

CALLS: dict[str, tuple[tuple[str, ...], str, dict[str, Any] | None]] = {
    # name: (rbac actions it performs, route, body)
    "correlate": (("correlate",), "tool", {"action": "correlate", "incident_id": "inc_gw_1"}),
    "correlate+append_note": (("correlate", "append_note"), "tool",
                              {"action": "correlate", "incident_id": "inc_gw_1",
                               "append_note": True}),
    "recurrence": (("recurrence",), "tool", {"action": "recurrence", "window_days": 30}),
    "buckets": (("buckets",), "tool", {"action": "buckets", "service": "gateway"}),
    "alerts": (("alerts",), "tool", {"action": "alerts", "window_days": 30}),
    "weekly_digest": (("weekly_digest",), "tool",
                      {"tool": "incident_intelligence_tool", "action": "weekly_digest"}),
    "gate": (("gate",), "gate", {"service": "gateway"}),
    "velocity": (("velocity",), "velocity", None),
    "correlation_quality": (("correlation_quality",), "tool",
                            {"action": "correlation_quality"}),
    "link_feedback": (("link_feedback",), "feedback",
                      {"incident_id": "inc_gw_1", "related_incident_id": "inc_gw_3",
                       "verdict": "related"}),
}


def expected_missing(role: str, actions: tuple[str, ...]) -> set[str]:
    needs = set().union(*(ACTION_NEEDS[a] for a in actions))
    return needs - ROLE_HOLDS[role]


def test_the_restated_rules_are_what_rbac_yml_says(policy) -> None:
    assert {r: set(e) for r, e in policy.rbac.roles.items()} == ROLE_HOLDS
    assert {a: set(e) for a, e in policy.rbac.actions.items()} == ACTION_NEEDS


MATRIX = [(role, call) for role in ROLE_HOLDS for call in CALLS]


@pytest.mark.parametrize(("role", "call"), MATRIX)
def test_pure_decision(policy, role: str, call: str) -> None:
    actions = CALLS[call][0]
    decision = decide(policy.rbac, role, operations_of(actions[0], "append_note" in actions))
    assert decision.allowed == (not expected_missing(role, actions))
    assert set(decision.missing) == expected_missing(role, actions)


@pytest.mark.parametrize(("role", "call"), MATRIX)
def test_http_matrix(client: Client, view, verdicts_file, role: str, call: str) -> None:
    actions, route, body = CALLS[call]
    token = ROLE_TOKENS[role]
    if route == "tool":
        reply = client.request("POST", "/v1/tools/incident_intelligence", json=body, token=token)
    elif route == "gate":
        reply = client.request("POST", "/v1/gates/recurrence_watch", json=body, token=token)
    elif route == "feedback":
        reply = client.request("POST", "/v1/feedback/links", json=body, token=token)
    else:
        reply = client.request("GET", "/v1/learning/velocity", token=token)
    missing = expected_missing(role, actions)
    if missing:
        assert reply.status == 403, reply.body
        error = reply.error
        assert error["code"] == "forbidden"
        for entitlement in missing:
            assert entitlement in error["message"]
    else:
        assert reply.status == (202 if route == "feedback" else 200), reply.body
    # A note is sent only when the whole call is allowed.
    assert len(view.notes) == (1 if call == "correlate+append_note" and not missing else 0)
    assert view.digest_runs == (1 if call == "weekly_digest" and not missing else 0)
    assert verdicts_file.exists() == (call == "link_feedback" and not missing)


def test_decisions_fail_closed() -> None:
    rbac = RbacPolicy(roles={"agent_x": [READ]}, actions={"recurrence": [READ]})
    unlisted = decide(rbac, "agent_x", ["brand_new_action"])
    assert not unlisted.allowed and unlisted.missing
    assert not decide(rbac, "agent_unknown", ["recurrence"]).allowed
    assert not decide(rbac, None, ["recurrence"]).allowed
    assert decide(rbac, "agent_x", ["recurrence"]).allowed


def test_refusal_names_role_entitlement_and_operations(policy) -> None:
    decision = decide(policy.rbac, "agent_viewer", operations_of("correlate", True))
    assert decision.missing == (WRITE,)
    assert decision.reason("agent_viewer") == (
        f"role 'agent_viewer' lacks {WRITE}, needed for correlate + append_note")
