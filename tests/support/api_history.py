"""A small incident history that exercises every section of the API and dashboard.

Built with the shared event builders: a high-recurrence ``gateway|error_rate``
bucket in ISO week 2026-W08 (so the digest creates a follow-up), a warn-level
``payments|latency`` signature, older resolved incidents over three quarters
(learning velocity), alert and learning events, responders' verdicts on pairs
(one contradicted by a newer one), events after ``AS_OF``
(must be invisible), a title that is an HTML script, and root causes and
labels that only stronger entitlements than ``tools.oncall.read`` could see.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.support.builders import at, incident_event, stamp

AS_OF = "2026-02-23T08:00:00Z"
SCRIPT_TITLE = "<script>document.title='pwned'</script> 5xx spike"
SECRET_ROOT_CAUSE = "root-cause-visible-only-in-postmortems"
SECRET_LABEL = "label-value-not-for-the-wall-screen"
GATEWAY_SIGNATURE = "a1" * 32
PAYMENTS_SIGNATURE = "b2" * 32


def _resolved(incident_id: str, started: datetime, service: str, kind: str,
              signature: str, minutes_to_resolve: int) -> dict[str, Any]:
    return incident_event(
        incident_id, started=started, service=service, kind=kind, signature=signature,
        severity="P2", status="resolved", etype="incident.closed",
        occurred=started + timedelta(minutes=minutes_to_resolve),
        detected_at=stamp(started + timedelta(minutes=5)),
        resolved_at=stamp(started + timedelta(minutes=minutes_to_resolve)),
        root_cause=SECRET_ROOT_CAUSE, labels={"team": SECRET_LABEL},
    )


def history() -> list[dict[str, Any]]:
    """Events in the topic formats, in no particular order."""
    events: list[dict[str, Any]] = []
    for i in range(7):  # high signature and a kept bucket in 2026-W08
        events.append(incident_event(
            f"inc_gw_{i}", started=at(days=i % 6, hours=3 + i), signature=GATEWAY_SIGNATURE,
            severity="P1", title="5xx spike on /v1/chat", root_cause=SECRET_ROOT_CAUSE,
            labels={"team": SECRET_LABEL}))
    events.append(incident_event("inc_gw_script", started=at(days=6, hours=1),
                                 title=SCRIPT_TITLE, severity="P2"))
    for i in range(4):  # warn-level signature
        events.append(incident_event(
            f"inc_pay_{i}", started=at(days=1 + i, hours=10), service="payments",
            kind="latency", signature=PAYMENTS_SIGNATURE, title="p99 latency over budget",
            status="mitigated"))
    events.append(incident_event("inc_worker_oom", started=at(days=2, hours=4),
                                 service="worker", kind=None, title="worker OOMKilled"))
    for q, month_offset in enumerate((-200, -120, -40)):  # three earlier quarters
        for j in range(3 + q):
            started = at(days=month_offset + 9 * j, hours=2)
            sig = GATEWAY_SIGNATURE if j == 0 else f"{q}{j}" * 32
            events.append(_resolved(f"inc_old_{q}_{j}", started, "gateway", "error_rate",
                                    sig, 30 + 10 * j))
    events.append({
        "event_id": "alert-1", "type": "alert.transition", "occurred_at": stamp(at(days=1)),
        "alert": {"alert_id": "al-1", "fingerprint": "fp-1", "service": "payments",
                  "kind": "latency", "severity": "P2", "env": "prod", "labels": {}},
        "from_state": "pending", "to_state": "firing", "incident_id": "inc_pay_0",
    })
    for k, day in enumerate((-150, -100, -30, -20)):
        events.append({"event_id": f"test-{k}", "type": "regression_test.added",
                       "occurred_at": stamp(at(days=day)), "incident_id": f"inc_old_0_{k % 3}",
                       "test_id": f"t-{k}", "root_cause": None})
    for n, (a, b, verdict, when) in enumerate((
            ("inc_gw_script", "inc_gw_5", "unrelated", at(days=6, hours=2)),
            ("inc_gw_2", "inc_gw_1", "unrelated", at(days=5)),  # contradicted later
            ("inc_gw_1", "inc_gw_2", "related", at(days=6, hours=3)),
            ("inc_pay_0", "inc_pay_1", "related", at(days=8)))):  # after AS_OF: invisible
        events.append({"event_id": f"link-{n}", "type": "incident.linked",
                       "occurred_at": stamp(when), "incident_id": a, "related_incident_id": b,
                       "verdict": verdict, "by": "ana"})
    events.append(incident_event("inc_after_as_of", started=at(days=8), service="billing",
                                 title="later than the answers"))
    return events
