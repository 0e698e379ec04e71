"""Event builders for tests: plain dicts in the topic formats of docs/architecture.md §3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

BASE = datetime(2026, 2, 16, tzinfo=UTC)  # Monday of 2026-W08


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def incident_event(
    incident_id: str,
    *,
    started: datetime,
    service: str = "gateway",
    kind: str | None = "error_rate",
    severity: str = "P2",
    status: str = "open",
    signature: str | None = None,
    title: str = "5xx spike",
    occurred: datetime | None = None,
    event_id: str | None = None,
    etype: str = "incident.opened",
    **extra: Any,
) -> dict[str, Any]:
    occurred = occurred or started
    incident: dict[str, Any] = {
        "incident_id": incident_id, "service": service, "severity": severity,
        "status": status, "title": title, "env": "prod", "started_at": stamp(started),
        "detected_at": None, "resolved_at": None, "root_cause": None, "labels": {},
    }
    if kind is not None:
        incident["kind"] = kind
    if signature is not None:
        incident["signature"] = signature
    incident.update(extra)
    return {
        "event_id": event_id or f"{incident_id}:{stamp(occurred)}:{status}",
        "type": etype,
        "occurred_at": stamp(occurred),
        "incident": incident,
    }


def at(hours: float = 0, days: float = 0, minutes: float = 0) -> datetime:
    return BASE + timedelta(days=days, hours=hours, minutes=minutes)


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def follow_up(dedupe_key: str, incident_id: str = "inc_1", **meta: Any) -> dict[str, Any]:
    """A valid ``intel.followups`` value (``FollowUp``); ``meta`` overrides fields."""
    body: dict[str, Any] = {
        "title": f"Recurring failures in {dedupe_key}",
        "owner": "team-gateway",
        "priority": "P1",
        "due_date": "2026-03-02",
        "dedupe_key": dedupe_key,
        "auto_created": True,
        "bucket_key": "gateway|error_rate",
        "count_7d": 4,
        "count_30d": 9,
    }
    body.update(meta)
    return {"type": "followup", "incident_id": incident_id,
            "message": f"Follow up on {dedupe_key}", "meta": body}
