"""Webhook bodies in the senders' formats, for tests (Alertmanager v4, Grafana v1, PagerDuty V3)."""

from __future__ import annotations

from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def am_alert(labels: dict[str, str], starts: str, *, ends: str | None = None,
             fingerprint: str | None = None, annotations: dict[str, str] | None = None,
             ) -> dict[str, Any]:
    """One ``alerts[]`` entry; resolved when ``ends`` is given."""
    entry: dict[str, Any] = {
        "status": "resolved" if ends else "firing",
        "labels": labels,
        "annotations": annotations or {"summary": "value 1"},
        "startsAt": starts,
        "endsAt": ends or ZERO_TIME,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
    return entry


def am_group(alerts: list[dict[str, Any]], *, receiver: str = "incident-intel",
             group_key: str = '{}:{alertname="Toggle"}', truncated: int = 0,
             external_url: str = "http://alertmanager:9093") -> dict[str, Any]:
    """An Alertmanager (version 4) notification of one group."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": receiver, "status": "firing" if firing else "resolved", "alerts": alerts,
        "groupLabels": {"alertname": "Toggle"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": external_url, "version": "4", "groupKey": group_key,
        "truncatedAlerts": truncated,
    }


def grafana_group(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Grafana Alerting's webhook contact point: version 1 and its extra fields."""
    body = am_group([{**a, "silenceURL": "http://grafana/alerting/silence/new",
                      "dashboardURL": "", "panelURL": "", "values": {"A": 1.0},
                      "valueString": "[ var='A' value=1 ]"} for a in alerts])
    return {**body, "version": "1", "orgId": 1, "state": "alerting",
            "title": "[FIRING:1] Toggle", "message": "**Firing**"}


def pd_event(event_id: str, event_type: str, occurred: str, incident_id: str = "PGR0VU2", *,
             status: str = "triggered", created: str = "2026-12-01T10:00:00Z",
             service: str = "API Service", priority: str | None = "P1",
             urgency: str = "high", title: str = "A little bump in the road") -> dict[str, Any]:
    """A PagerDuty V3 webhook delivery of an incident event."""
    data: dict[str, Any] = {
        "id": incident_id, "type": "incident",
        "self": f"https://api.pagerduty.com/incidents/{incident_id}",
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}", "number": 2,
        "status": status, "incident_key": "d3640fbd41094207a1c11e58e46b1662",
        "created_at": created, "title": title,
        "service": {"id": "PF9KMXH", "summary": service, "type": "service_reference",
                    "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                    "self": "https://api.pagerduty.com/services/PF9KMXH"},
        "assignees": [], "teams": [], "urgency": urgency,
        "priority": None if priority is None else {"id": "PSO75BM", "summary": priority,
                                                   "type": "priority_reference"},
        "conference_bridge": None, "resolve_reason": None,
    }
    return {"event": {"id": event_id, "event_type": event_type, "resource_type": "incident",
                      "occurred_at": occurred, "agent": None, "client": None, "data": data}}
