"""Test helpers: event builders and an independent reading of the issue's formulas.

The reference below is written straight from the issue text with the standard
library (``statistics``) and floats, sharing no code with the
``app.intel.velocity_*`` modules, so agreement between the two means something.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident_event(event_id: str, incident_id: str, started: datetime, *,
                   occurred: datetime | None = None, kind: str = "incident.opened",
                   signature: str = "sig", detected: datetime | None = None,
                   resolved: datetime | None = None, root_cause: str | None = None,
                   status: str = "open") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "occurred_at": ts(occurred or started),
        "incident": {
            "incident_id": incident_id, "service": "gateway", "kind": "error_rate",
            "severity": "P2", "status": status, "signature": signature, "title": "t",
            "started_at": ts(started),
            "detected_at": ts(detected) if detected else None,
            "resolved_at": ts(resolved) if resolved else None,
            "root_cause": root_cause,
        },
    }


def firing_event(event_id: str, incident_id: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id, "type": "alert.transition", "occurred_at": ts(at),
        "alert": {"alert_id": "al-" + event_id, "fingerprint": "fp-" + event_id,
                  "service": "gateway", "severity": "P2"},
        "from_state": "pending", "to_state": "firing", "incident_id": incident_id,
    }


def regression_test_event(event_id: str, at: datetime,
                          incident_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id, "type": "regression_test.added", "occurred_at": ts(at),
            "test_id": "t-" + event_id, "incident_id": incident_id}




def postmortem(event_id: str, incident_id: str, at: datetime, cause: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "postmortem.published", "occurred_at": ts(at),
            "incident_id": incident_id, "root_cause": cause}


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


# ------------------------------------------------------------------ the reference


@dataclass
class Plain:
    """One incident as the issue describes it, already resolved to plain values."""

    incident_id: str
    started: datetime
    resolved: datetime | None
    detected: datetime | None  # detected_at, else first firing, else opened event
    cause: str  # root cause when known, else the signature


def _quarter(moment: datetime) -> str:
    return f"{moment.year}-Q{(moment.month + 2) // 3}"


def _p90(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean_minutes": None, "median_minutes": None, "p90_minutes": None}
    return {"count": len(values), "mean_minutes": statistics.fmean(values),
            "median_minutes": statistics.median(values), "p90_minutes": _p90(values)}


def reference(incidents: list[Plain], tests: list[datetime], target: float) -> dict[str, Any]:
    """Per-quarter metrics and the overall score, from the issue's wording."""
    walk = sorted(incidents, key=lambda i: (i.started, i.incident_id))

    def minutes(i: Plain, end: datetime | None) -> float | None:
        return None if end is None else max(0.0, (end - i.started).total_seconds() / 60)

    appended: dict[str, list[float]] = {}
    repeats: dict[str, int] = {}
    everything: list[float] = []
    for n, inc in enumerate(walk):
        earlier = walk[:n]
        repeat = any(e.cause == inc.cause for e in earlier)
        q = _quarter(inc.started)
        repeats[q] = repeats.get(q, 0) + repeat
        if n == 0:
            continue
        lat = minutes(inc, inc.detected)
        lats = [m for e in earlier if (m := minutes(e, e.detected)) is not None]
        faster = lat is not None and bool(lats) and lat < sum(lats) / len(lats)
        values = [0.0 if repeat else 1.0, 1.0 if faster else 0.5]
        appended.setdefault(q, []).extend(values)
        everything.extend(values)

    quarters: dict[str, dict[str, Any]] = {}
    labels = sorted({_quarter(i.started) for i in walk} | {_quarter(t) for t in tests})
    for q in labels:
        mine = [i for i in walk if _quarter(i.started) == q]
        values = appended.get(q, [])
        rate = repeats.get(q, 0) / len(mine) if mine else None
        quarters[q] = {
            "incidents": len(mine),
            "mttr": _stats([m for i in mine if (m := minutes(i, i.resolved)) is not None]),
            "detection_latency": _stats(
                [m for i in mine if (m := minutes(i, i.detected)) is not None]),
            "recurrences": repeats.get(q, 0),
            "recurrence_rate": rate,
            "above_target": rate is not None and rate > target,
            "regression_tests_added": sum(1 for t in tests if _quarter(t) == q),
            "score": sum(values) / len(values) if values else None,
            "score_values": len(values),
        }
    score = sum(everything) / len(everything) if everything else 0.0
    return {"quarters": quarters, "score": score}


def minutes_after(moment: datetime, minutes: float) -> datetime:
    return moment + timedelta(minutes=minutes)
