"""The incident and alert events an incident produces over its life.

The records are the contract models of ``incidents.events`` and
``alerts.state`` (state-carrying incident events; the newest ``occurred_at``
wins), so a simulated incident or a synthetic stream can be fed to the live
pipeline or to ``incident-intel tool --events``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.contracts import (
    Alert,
    AlertState,
    AlertTransition,
    Incident,
    IncidentEvent,
    Severity,
    Status,
)

Record = IncidentEvent | AlertTransition


@dataclass(frozen=True)
class Lifecycle:
    """When things happened to one incident, and what it looked like."""

    incident_id: str
    service: str
    kind: str
    title: str
    signature: str | None
    alert_name: str
    alert_id: str
    fingerprint: str
    started_at: datetime
    detected_at: datetime
    acknowledged_at: datetime
    mitigated_at: datetime
    resolved_at: datetime
    closed_at: datetime
    initial_severity: Severity
    final_severity: Severity
    root_cause: str | None
    env: str = "prod"
    labels: dict[str, str] = field(default_factory=dict)


def _incident(lc: Lifecycle, *, status: Status, severity: Severity, resolved: bool = False,
              root_cause: str | None = None) -> Incident:
    return Incident(
        incident_id=lc.incident_id,
        service=lc.service,
        kind=lc.kind,
        severity=severity,
        status=status,
        signature=lc.signature,
        title=lc.title,
        env=lc.env,
        started_at=lc.started_at,
        detected_at=lc.detected_at,
        resolved_at=lc.resolved_at if resolved else None,
        root_cause=root_cause,
        labels=lc.labels,
    )


def lifecycle_events(lc: Lifecycle, next_id: Callable[[], str], *,
                     pending_at: datetime | None = None) -> list[Record]:
    """Alert pending → firing → acknowledged → resolved around the incident's
    opened → mitigating → mitigated → resolved → closed, in time order."""
    alert = Alert(alert_id=lc.alert_id, fingerprint=lc.fingerprint, service=lc.service,
                  kind=lc.kind, severity=lc.initial_severity, env=lc.env,
                  labels={"alertname": lc.alert_name})

    def transition(at: datetime, before: AlertState | None, after: AlertState) -> AlertTransition:
        return AlertTransition(event_id=next_id(), type="alert.transition", occurred_at=at,
                               alert=alert, from_state=before, to_state=after,
                               incident_id=lc.incident_id)

    def incident(at: datetime, kind: Literal["incident.opened", "incident.updated",
                                             "incident.closed"],
                 status: Status, severity: Severity, resolved: bool = False,
                 root_cause: str | None = None) -> IncidentEvent:
        return IncidentEvent(event_id=next_id(), type=kind, occurred_at=at,
                             incident=_incident(lc, status=status, severity=severity,
                                                resolved=resolved, root_cause=root_cause))

    final = lc.final_severity
    return [
        transition(pending_at or lc.detected_at, None, "pending"),
        transition(lc.detected_at, "pending", "firing"),
        incident(lc.detected_at, "incident.opened", status="open",
                 severity=lc.initial_severity),
        transition(lc.acknowledged_at, "firing", "acknowledged"),
        incident(lc.acknowledged_at, "incident.updated", status="mitigating", severity=final),
        incident(lc.mitigated_at, "incident.updated", status="mitigated", severity=final),
        transition(lc.mitigated_at, "acknowledged", "resolved"),
        incident(lc.resolved_at, "incident.updated", status="resolved", severity=final,
                 resolved=True),
        incident(lc.closed_at, "incident.closed", status="closed", severity=final,
                 resolved=True, root_cause=lc.root_cause),
    ]
