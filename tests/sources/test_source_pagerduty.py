"""PagerDuty V3 deliveries → ``incidents.events`` versions, and the input rule over them.

The property: whatever order (and however often) the events of an incident are
delivered, the engine keeps the version of the newest ``event.occurred_at``
(ties by event id), which is the oracle's pick.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.contracts import IncidentEvent, decode_event
from app.intel.engine import IntelEngine
from app.policy import Policy
from app.sources.pagerduty import map_event
from app.sources.records import InvalidDelivery
from tests.support.source_payloads import pd_event


def version(policy: Policy, body: dict) -> IncidentEvent:
    delivery = map_event(body, policy.sources.pagerduty)
    assert delivery.record is not None, delivery.ignored
    event = decode_event(delivery.record.value)
    assert isinstance(event, IncidentEvent)
    assert delivery.record.key == event.incident.incident_id
    assert delivery.record.record_id == event.event_id
    return event


def test_a_triggered_incident_becomes_an_opened_version(policy: Policy) -> None:
    event = version(policy, pd_event("01E1", "incident.triggered", "2026-12-01T10:00:05.169Z"))
    incident = event.incident
    assert (event.event_id, event.type) == ("pd:01E1", "incident.opened")
    assert (incident.incident_id, incident.service, incident.status, incident.severity) == (
        "pd:PGR0VU2", "API Service", "open", "P1")
    assert incident.started_at.isoformat() == "2026-12-01T10:00:00+00:00"
    assert incident.resolved_at is None and incident.kind is None  # the kind rules decide
    assert incident.labels == {"pagerduty_service_id": "PF9KMXH", "pagerduty_number": "2",
                               "priority": "P1", "urgency": "high"}


def test_acknowledge_and_resolve_are_updates_of_the_same_incident(policy: Policy) -> None:
    acked = version(policy, pd_event("02", "incident.acknowledged", "2026-12-01T10:05:00Z",
                                     status="acknowledged"))
    resolved = version(policy, pd_event("03", "incident.resolved", "2026-12-01T11:00:00Z",
                                        status="resolved"))
    assert (acked.type, acked.incident.status, acked.incident.resolved_at) == (
        "incident.updated", "mitigating", None)
    assert (resolved.type, resolved.incident.status) == ("incident.closed", "resolved")
    assert resolved.incident.resolved_at == resolved.occurred_at


@pytest.mark.parametrize(("priority", "urgency", "severity"), [
    ("P1", "low", "P1"), ("p2", "high", "P2"), ("P5", "high", "P3"),
    (None, "high", "P1"), (None, "low", "P3"), ("SEV-X", "medium", "P2"),
])
def test_severity_is_the_policy_table_of_priority_then_urgency(
        policy: Policy, priority: str | None, urgency: str, severity: str) -> None:
    event = version(policy, pd_event("e", "incident.priority_updated", "2026-12-01T10:00:00Z",
                                     priority=priority, urgency=urgency))
    assert event.incident.severity == severity


@pytest.mark.parametrize("event_type", ["incident.annotated", "incident.responder.added",
                                        "service.updated", "pagey.ping"])
def test_other_events_are_ignored_not_refused(policy: Policy, event_type: str) -> None:
    body = pd_event("e", event_type, "2026-12-01T10:00:00Z")
    body["event"]["data"] = {"id": "P2LA89X", "type": "incident_note", "content": "hi"}
    delivery = map_event(body, policy.sources.pagerduty)
    assert delivery.record is None and event_type in (delivery.ignored or "")


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda b: b.pop("event"), "event"),
    (lambda b: b["event"].update(id=""), "event.id"),
    (lambda b: b["event"].update(occurred_at="soon"), "event.occurred_at"),
    (lambda b: b["event"]["data"].update(type="incident_note"), "event.data.type"),
    (lambda b: b["event"]["data"].pop("created_at"), "event.data.created_at"),
    (lambda b: b["event"]["data"].update(status="snoozed"), "event.data.status"),
    (lambda b: b["event"]["data"]["service"].update(summary=""), "event.data.service.summary"),
    (lambda b: b["event"]["data"]["service"].update(summary="s" * 121), "event.data.service"),
])
def test_an_incident_event_not_in_the_format_names_the_field(policy: Policy, mutate,
                                                            where: str) -> None:
    body = pd_event("e", "incident.triggered", "2026-12-01T10:00:00Z")
    mutate(body)
    with pytest.raises(InvalidDelivery, match=rf"^{where.replace('.', '[.]')}[: ]"):
        map_event(body, policy.sources.pagerduty)


STATES = [("incident.triggered", "triggered"), ("incident.acknowledged", "acknowledged"),
          ("incident.priority_updated", "acknowledged"), ("incident.resolved", "resolved"),
          ("incident.reopened", "triggered")]


@given(st.lists(st.tuples(st.sampled_from(STATES), st.integers(0, 500)), min_size=1,
                max_size=8), st.integers(0, 2**32))
def test_redelivered_and_out_of_order_events_leave_the_newest_version(
        policy: Policy, steps: list[tuple[tuple[str, str], int]], seed: int) -> None:
    bodies = [pd_event(f"ev{n:02d}", kind, f"2026-12-01T10:{s // 60:02d}:{s % 60:02d}Z",
                       status=status, priority=random.Random(n).choice(["P1", "P3"]))
              for n, ((kind, status), s) in enumerate(steps)]
    rng = random.Random(seed)
    delivered = [b for b in bodies for _ in range(rng.randint(1, 3))]
    rng.shuffle(delivered)
    engine = IntelEngine(policy)
    for body in delivered:
        engine.apply(version(policy, body))
    newest = max(bodies, key=lambda b: (b["event"]["occurred_at"], "pd:" + b["event"]["id"]))
    expected = version(policy, newest).incident
    kept = engine.record("pd:PGR0VU2")
    assert (kept.status, kept.severity) == (expected.status, expected.severity)
    assert kept.version[1] == "pd:" + newest["event"]["id"]
