"""Correlation: which recent incidents are related to this one, and why.

Scoring is a sum of policy rule weights (``correlation.rules``):

- ``same_signature``: equal signatures;
- ``same_service_and_kind``: equal service and kind;
- ``same_service_time_cluster``: equal service, started within ``within_minutes``;
- ``same_kind_cross_service``: equal kind, started within ``within_minutes``.

Candidates are the other incidents started within ``lookback_days`` before or
after the target. Kept: score ≥ ``min_score``; order: score desc, started_at
desc, incident_id; cut at ``max_related``.

:func:`rank` is the rule over any candidate list (the oracle and the stream's
distributed join use it). :class:`CorrelationIndex` finds the same answer
without looking at every incident: candidates fall into classes whose score is
fixed (same signature and near in time, same service and kind but far, …);
the classes are read from per-signature, per-service-and-kind, per-service and
per-kind timelines, highest score first, newest first, and reading stops as
soon as the lower classes can no longer reach the cut.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from app.contracts import CORRELATION_RULES, CorrelationRuleName, Note, NoteMeta, RelatedIncident
from app.intel.incidents import Record
from app.intel.periods import DAY, MINUTE
from app.intel.timeline import Timeline, TimelineIndex
from app.policy import IntelPolicy


@dataclass(frozen=True, slots=True)
class Match:
    """Which of the four conditions hold between a target and a candidate."""

    signature: bool
    service: bool
    kind: bool
    near: bool

    def holds(self) -> dict[CorrelationRuleName, bool]:
        """Whether each rule of ``correlation.rules`` holds, by rule name."""
        return {
            "same_signature": self.signature,
            "same_service_and_kind": self.service and self.kind,
            "same_service_time_cluster": self.service and self.near,
            "same_kind_cross_service": self.kind and self.near,
        }

    def reasons(self, policy: IntelPolicy) -> list[str]:
        holds = self.holds()
        return [rule.name for rule in policy.correlation.rules if holds[rule.name]]

    def score(self, weights: dict[CorrelationRuleName, int]) -> int:
        """The sum of the weights (``IntelPolicy.rule_weights()``) of the rules that hold."""
        holds = self.holds()
        return sum(weight for name, weight in weights.items() if holds[name])


def match(target: Record, candidate: Record, policy: IntelPolicy) -> Match:
    delta = abs(candidate.started - target.started)
    return Match(
        signature=candidate.signature == target.signature,
        service=candidate.service == target.service,
        kind=candidate.kind == target.kind,
        near=delta <= policy.correlation.within_minutes * MINUTE,
    )


def related(candidate: Record, m: Match, score: int, policy: IntelPolicy) -> RelatedIncident:
    """The response row of a kept candidate, from its match and score."""
    inc = candidate.incident
    return RelatedIncident(
        incident_id=inc.incident_id,
        score=score,
        reasons=m.reasons(policy),
        service=inc.service,
        kind=candidate.kind,
        severity=inc.severity,
        status=inc.status,
        started_at=inc.started_at,
    )


def rank(
    target: Record, candidates: Iterable[Record], policy: IntelPolicy
) -> list[RelatedIncident]:
    """The correlation rule applied to an explicit candidate list.

    Scores every candidate but builds the response rows of the kept top
    ``max_related`` only: an index offers far more candidates than it keeps.
    """
    weights = policy.rule_weights()
    rules = policy.correlation
    lookback = rules.lookback_days * DAY
    kept: list[tuple[int, int, str, Record, Match]] = []
    for c in candidates:
        if c.incident_id == target.incident_id or abs(c.started - target.started) > lookback:
            continue
        m = match(target, c, policy)
        score = m.score(weights)
        if score >= rules.min_score:
            kept.append((-score, -c.started, c.incident_id, c, m))
    top = heapq.nsmallest(rules.max_related, kept, key=lambda item: item[:3])
    return [related(c, m, -negated, policy) for negated, _, _, c, m in top]


def note_for(incident_id: str, related_list: list[RelatedIncident], policy: IntelPolicy) -> Note:
    """The timeline note quoting the top related incidents; its id hashes its content.

    The message says how many incidents are related in all, so the id covers
    the message as well as the quoted scores: a note that reads differently
    never reuses an id.
    """
    top = related_list[: policy.correlation.note_top]
    parts = [f"{r.incident_id} (score {r.score}: {', '.join(r.reasons)})" for r in top]
    message = (
        f"[intel] {len(related_list)} related incident(s): " + "; ".join(parts)
        if top
        else "[intel] no related incidents"
    )
    digest = hashlib.sha256(
        "|".join([incident_id, message] + [f"{r.incident_id}:{r.score}" for r in top]).encode()
    ).hexdigest()[:16]
    return Note(
        note_id=f"intel_note:{incident_id}:{digest}",
        incident_id=incident_id,
        message=message,
        meta=NoteMeta(related=top),
    )


# ------------------------------------------------------------------ indexed search


Lookup = Callable[[str], Record]


@dataclass(frozen=True, slots=True)
class _Class:
    """Candidates of one fixed score: which timeline, which time band, which filter."""

    score: int
    source: str
    near: bool
    accepts: Callable[[Record, Record], bool]


def _classes(policy: IntelPolicy) -> list[_Class]:
    w = policy.rule_weights()
    sig, vk = w["same_signature"], w["same_service_and_kind"]
    vn, kn = w["same_service_time_cluster"], w["same_kind_cross_service"]

    def same(attr: str) -> Callable[[Record, Record], bool]:
        return lambda t, c: getattr(t, attr) == getattr(c, attr)

    s, v, k = same("signature"), same("service"), same("kind")
    classes = [
        _Class(sig + vk + vn + kn, "signature", True, lambda t, c: v(t, c) and k(t, c)),
        _Class(sig + vk, "signature", False, lambda t, c: v(t, c) and k(t, c)),
        _Class(sig + vn, "signature", True, lambda t, c: v(t, c) and not k(t, c)),
        _Class(sig + kn, "signature", True, lambda t, c: k(t, c) and not v(t, c)),
        _Class(sig, "signature", True, lambda t, c: not v(t, c) and not k(t, c)),
        _Class(sig, "signature", False, lambda t, c: not (v(t, c) and k(t, c))),
        _Class(vk + vn + kn, "service_kind", True, lambda t, c: not s(t, c)),
        _Class(vk, "service_kind", False, lambda t, c: not s(t, c)),
        _Class(vn, "service", True, lambda t, c: not s(t, c) and not k(t, c)),
        _Class(kn, "kind", True, lambda t, c: not s(t, c) and not v(t, c)),
    ]
    classes.sort(key=lambda c: -c.score)
    return classes


class CorrelationIndex:
    """Per-signature, per-service-and-kind, per-service and per-kind timelines."""

    def __init__(self, policy: IntelPolicy) -> None:
        self.policy = policy
        self._classes = _classes(policy)
        self._index = {name: TimelineIndex() for name in
                       ("signature", "service_kind", "service", "kind")}

    @staticmethod
    def _keys(record: Record) -> dict[str, object]:
        return {
            "signature": record.signature,
            "service_kind": (record.service, record.kind),
            "service": record.service,
            "kind": record.kind,
        }

    def timeline(self, source: str, key: object) -> Timeline | None:
        """The timeline of one key of one index (``signature``, ``service``, ``kind``…)."""
        return self._index[source].get(key)

    def add(self, record: Record) -> None:
        for name, key in self._keys(record).items():
            self._index[name].add(key, record.started, record.incident_id)

    def remove(self, record: Record) -> None:
        for name, key in self._keys(record).items():
            self._index[name].remove(key, record.started, record.incident_id)

    def _band(self, timeline: Timeline, target: Record, near: bool) -> Iterator[tuple[int, str]]:
        t = target.started
        w = self.policy.correlation.within_minutes * MINUTE
        lookback = self.policy.correlation.lookback_days * DAY
        if near:
            yield from timeline.newest_first(t - w, t + w)
            return
        if lookback > w:
            yield from timeline.newest_first(t + w + 1, t + lookback)
            yield from timeline.newest_first(t - lookback, t - w - 1)

    def correlate(self, target: Record, lookup: Lookup) -> list[RelatedIncident]:
        """Equal to ``rank(target, every incident, policy)``, reading only what can matter."""
        if len(self.policy.correlation.rules) < len(CORRELATION_RULES):
            return rank(target, self._union(target, lookup), self.policy)
        limit = self.policy.correlation.max_related
        keys = self._keys(target)
        found: dict[str, Record] = {}
        group_score: int | None = None
        for cls in self._classes:
            if cls.score < self.policy.correlation.min_score:
                break
            if cls.score != group_score:
                if group_score is not None and len(found) >= limit:
                    break
                group_score = cls.score
            timeline = self._index[cls.source].get(keys[cls.source])
            if timeline is None:
                continue
            taken = 0
            last_started: int | None = None
            for started, incident_id in self._band(timeline, target, cls.near):
                if taken >= limit and started != last_started:
                    break
                if incident_id == target.incident_id:
                    continue
                candidate = lookup(incident_id)
                if not cls.accepts(target, candidate):
                    continue
                found[incident_id] = candidate
                taken += 1
                last_started = started
        return rank(target, found.values(), self.policy)


    def _union(self, target: Record, lookup: Lookup) -> list[Record]:
        """Every incident that matches at least one rule (used when a rule is switched off,
        which breaks the fixed-score classes)."""
        keys = self._keys(target)
        ids: set[str] = set()
        for source, near in (("signature", False), ("service_kind", False),
                             ("service", True), ("kind", True)):
            timeline = self._index[source].get(keys[source])
            if timeline is not None:
                bands = [True] if near else [True, False]
                for band in bands:
                    ids.update(i for _, i in self._band(timeline, target, band))
        return [lookup(i) for i in sorted(ids)]
