"""A deliberately naive re-implementation of the engine's rules, from the issue text.

It folds events by brute force and scans every incident for every question, so
it is slow but easy to check by reading. The property tests compare it with the
incremental engine.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from app.contracts import IncidentEvent
from app.intel.signature import compute_signature, derive_kind
from app.policy import IntelPolicy


class Naive:
    def __init__(self, events: list, policy: IntelPolicy) -> None:
        self.policy = policy
        unique = {}
        for event in events:
            unique.setdefault(event.event_id, event)
        best: dict[str, IncidentEvent] = {}
        for event in unique.values():
            if not isinstance(event, IncidentEvent):
                continue
            current = best.get(event.incident.incident_id)
            if current is None or (event.occurred_at, event.event_id) > (
                current.occurred_at, current.event_id
            ):
                best[event.incident.incident_id] = event
        self.incidents = {}
        for iid, event in best.items():
            inc = event.incident
            kind = inc.kind or derive_kind(inc.title, inc.labels, policy.kind_derivation)
            sig = inc.signature or compute_signature(inc.service, kind, inc.title)
            self.incidents[iid] = dict(id=iid, service=inc.service, kind=kind, sig=sig,
                                       started=inc.started_at, severity=inc.severity,
                                       status=inc.status)

    def correlate(self, iid: str) -> list[tuple[str, int, list[str]]]:
        cfg = self.policy.correlation
        t = self.incidents[iid]
        out = []
        for c in self.incidents.values():
            if c["id"] == iid:
                continue
            delta = abs(c["started"] - t["started"])
            if delta > timedelta(days=cfg.lookback_days):
                continue
            near = delta <= timedelta(minutes=cfg.within_minutes)
            holds = {
                "same_signature": c["sig"] == t["sig"],
                "same_service_and_kind": c["service"] == t["service"] and c["kind"] == t["kind"],
                "same_service_time_cluster": c["service"] == t["service"] and near,
                "same_kind_cross_service": c["kind"] == t["kind"] and near,
            }
            reasons = [r.name for r in cfg.rules if holds[r.name]]
            score = sum(r.weight for r in cfg.rules if holds[r.name])
            if score >= cfg.min_score:
                out.append((c["id"], score, reasons, c["started"]))
        out.sort(key=lambda x: (-x[1], -x[3].timestamp(), x[0]))
        return [(i, s, r) for i, s, r, _ in out[: cfg.max_related]]

    def in_window(self, as_of: datetime, days: int) -> list[dict]:
        lo = as_of - timedelta(days=days)
        return [c for c in self.incidents.values() if lo < c["started"] <= as_of]

    def counts(self, as_of: datetime, days: int, field: str) -> Counter:
        return Counter(c[field] for c in self.in_window(as_of, days))
