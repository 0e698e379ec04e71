"""PagerDuty V3 webhooks → ``incidents.events`` records.

A V3 delivery holds one event. An ``incident.*`` event whose ``data`` is the
incident (``sources.yml`` lists which types are taken) carries the incident's
whole state at ``event.occurred_at``, which is exactly what an
``incidents.events`` record is: a version of the incident. So:

- ``incident_id`` = ``pd:<data.id>``; ``event_id`` = ``pd:<event.id>`` (PagerDuty
  re-delivers an event with the same id, so a re-delivery is the same record);
- ``occurred_at`` = ``event.occurred_at``: it orders the versions, and the input
  rule (newest ``(occurred_at, event_id)`` wins) makes re-delivered and
  out-of-order events harmless;
- service from ``data.service.summary``; status from ``data.status`` by policy;
  severity from the priority's name, else the urgency, by policy;
  ``started_at`` = ``data.created_at``; ``resolved_at`` = ``occurred_at`` of a
  resolved version; the kind is left to the policy's kind rules.

Any other event (a note, a responder, ``pagey.ping``, a service change) is
answered and ignored: it says nothing about an incident's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.contracts import (
    MAX_EVENT_BYTES,
    Incident,
    IncidentEvent,
    Timestamp,
    dump_json,
    format_timestamp,
)
from app.policy import PagerDutySource

from .records import InvalidDelivery, SourceRecord, first_error

__all__ = ["IncidentDelivery", "map_event"]

TOPIC = "incidents.events"
_TITLE_MAX = 1000
_LABEL_MAX = 200


class _Reference(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str | None = None
    summary: str | None = None


class _Incident(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: Annotated[str, Field(min_length=1)]
    type: Literal["incident"]
    status: str
    created_at: Timestamp
    title: str = ""
    number: int | None = None
    service: _Reference
    priority: _Reference | None = None
    urgency: str | None = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: Annotated[str, Field(min_length=1)]
    event_type: str
    occurred_at: Timestamp
    data: Any = None


class _Delivery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    event: _Event


@dataclass(frozen=True)
class IncidentDelivery:
    """One delivery: its record, or why it was ignored."""

    event_type: str
    record: SourceRecord | None
    ignored: str | None = None


def _severity(incident: _Incident, policy: PagerDutySource) -> str:
    table = policy.severity
    priority = incident.priority.summary if incident.priority else None
    if priority and priority.lower() in table.by_priority:
        return table.by_priority[priority.lower()]
    if incident.urgency and incident.urgency.lower() in table.by_urgency:
        return table.by_urgency[incident.urgency.lower()]
    return table.default


def _labels(incident: _Incident) -> dict[str, str]:
    found = {
        "pagerduty_service_id": incident.service.id,
        "pagerduty_number": None if incident.number is None else str(incident.number),
        "priority": incident.priority.summary if incident.priority else None,
        "urgency": incident.urgency,
    }
    return {name: value[:_LABEL_MAX] for name, value in found.items() if value}


def map_event(body: Any, policy: PagerDutySource) -> IncidentDelivery:
    """The ``incidents.events`` record of one decoded delivery (or why none).

    Raises :class:`InvalidDelivery` naming the first problem when the body is not
    a V3 delivery, or when a listed incident event cannot be an incident version.
    """
    try:
        event = _Delivery.model_validate(body).event
    except ValidationError as exc:
        raise InvalidDelivery(first_error(exc)) from None
    if event.event_type not in policy.event_types:
        return IncidentDelivery(event.event_type, None,
                                f"event type {event.event_type!r} is not one sources.yml "
                                "turns into incident versions")
    try:
        incident = _Incident.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidDelivery(first_error(exc, "event.data")) from None
    status = policy.status.get(incident.status)  # type: ignore[call-overload]
    if status is None:
        raise InvalidDelivery(f"event.data.status: {incident.status!r} is not triggered, "
                              "acknowledged or resolved")
    kind: Literal["incident.opened", "incident.updated", "incident.closed"] = (
        "incident.closed" if incident.status == "resolved"
        else "incident.opened" if event.event_type == "incident.triggered"
        else "incident.updated")
    if not incident.service.summary:
        raise InvalidDelivery("event.data.service.summary: missing (it names the service)")
    try:
        record = IncidentEvent(
            event_id=f"pd:{event.id}", type=kind, occurred_at=event.occurred_at,
            incident=Incident(
                incident_id=f"pd:{incident.id}", service=incident.service.summary,
                severity=_severity(incident, policy), status=status,
                title=incident.title[:_TITLE_MAX], env=policy.env,
                started_at=incident.created_at,
                resolved_at=event.occurred_at if incident.status == "resolved" else None,
                labels=_labels(incident)))
    except ValidationError as exc:
        raise InvalidDelivery(first_error(exc, "event.data")) from None
    value = dump_json(record)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidDelivery(f"event: the record would be {len(value)} bytes, over "
                              f"{MAX_EVENT_BYTES}")
    return IncidentDelivery(event.event_type, SourceRecord(
        topic=TOPIC, key=record.incident.incident_id, value=value, record_id=record.event_id,
        source="/sources/pagerduty", time=format_timestamp(record.occurred_at)))
