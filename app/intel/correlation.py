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
import itertools
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
    return _row(candidate, score, m.reasons(policy))


def _row(candidate: Record, score: int, reasons: list[str]) -> RelatedIncident:
    return RelatedIncident(
        incident_id=candidate.incident_id, score=score, reasons=reasons,
        service=candidate.service, kind=candidate.kind, severity=candidate.severity,
        status=candidate.status, started_at=candidate.started_at,
    )


Conditions = tuple[bool, bool, bool, bool]
"""Same signature, same service, same kind, started near: what a score depends on."""


@dataclass(frozen=True, slots=True)
class Scoring:
    """The correlation rule of one policy, with each outcome's score and reasons
    worked out once (16 combinations of four conditions) instead of per candidate."""

    lookback: int
    within: int
    min_score: int
    max_related: int
    outcomes: dict[Conditions, tuple[int, tuple[str, ...]]]

    @classmethod
    def of(cls, policy: IntelPolicy) -> Scoring:
        weights = policy.rule_weights()
        outcomes: dict[Conditions, tuple[int, tuple[str, ...]]] = {}
        for s, v, k, n in itertools.product((False, True), repeat=4):
            m = Match(s, v, k, n)
            outcomes[(s, v, k, n)] = (m.score(weights), tuple(m.reasons(policy)))
        rules = policy.correlation
        return cls(rules.lookback_days * DAY, rules.within_minutes * MINUTE, rules.min_score,
                   rules.max_related, outcomes)

    def rank(self, target: Record, candidates: Iterable[Record]) -> list[RelatedIncident]:
        """:func:`rank` with this policy."""
        lookback, within, min_score = self.lookback, self.within, self.min_score
        outcomes = self.outcomes
        t_id, t_started = target.incident_id, target.started
        t_sig, t_service, t_kind = target.signature, target.service, target.kind
        kept: list[tuple[int, int, str, Record, tuple[str, ...]]] = []
        for c in candidates:
            delta = abs(c.started - t_started)
            if delta > lookback or c.incident_id == t_id:
                continue
            score, reasons = outcomes[(c.signature == t_sig, c.service == t_service,
                                       c.kind == t_kind, delta <= within)]
            if score >= min_score:
                kept.append((-score, -c.started, c.incident_id, c, reasons))
        top = heapq.nsmallest(self.max_related, kept, key=lambda item: item[:3])
        return [_row(c, -negated, list(reasons)) for negated, _, _, c, reasons in top]


def rank(
    target: Record, candidates: Iterable[Record], policy: IntelPolicy
) -> list[RelatedIncident]:
    """The correlation rule applied to an explicit candidate list.

    Scores every candidate but builds the response rows of the kept top
    ``max_related`` only: an index offers far more candidates than it keeps.
    """
    return Scoring.of(policy).rank(target, candidates)


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


Same = tuple[bool, bool, bool]
"""Same signature, same service, same kind (of a candidate and the target)."""


@dataclass(frozen=True, slots=True)
class _Class:
    """Candidates of one fixed score: which timeline, which time band, which filter."""

    score: int
    source: str
    near: bool
    accepts: frozenset[Same]


def _classes(policy: IntelPolicy) -> list[_Class]:
    w = policy.rule_weights()
    sig, vk = w["same_signature"], w["same_service_and_kind"]
    vn, kn = w["same_service_time_cluster"], w["same_kind_cross_service"]

    def where(test: Callable[[bool, bool, bool], bool]) -> frozenset[Same]:
        return frozenset((s, v, k) for s, v, k in itertools.product((False, True), repeat=3)
                         if test(s, v, k))

    classes = [
        _Class(sig + vk + vn + kn, "signature", True, where(lambda s, v, k: v and k)),
        _Class(sig + vk, "signature", False, where(lambda s, v, k: v and k)),
        _Class(sig + vn, "signature", True, where(lambda s, v, k: v and not k)),
        _Class(sig + kn, "signature", True, where(lambda s, v, k: k and not v)),
        _Class(sig, "signature", True, where(lambda s, v, k: not v and not k)),
        _Class(sig, "signature", False, where(lambda s, v, k: not (v and k))),
        _Class(vk + vn + kn, "service_kind", True, where(lambda s, v, k: not s)),
        _Class(vk, "service_kind", False, where(lambda s, v, k: not s)),
        _Class(vn, "service", True, where(lambda s, v, k: not s and not k)),
        _Class(kn, "kind", True, where(lambda s, v, k: not s and not v)),
    ]
    classes.sort(key=lambda c: -c.score)
    return classes


class CorrelationIndex:
    """Per-signature, per-service-and-kind, per-service and per-kind timelines."""

    def __init__(self, policy: IntelPolicy) -> None:
        self.policy = policy
        self.scoring = Scoring.of(policy)
        self._all_rules = len(policy.correlation.rules) == len(CORRELATION_RULES)
        self._classes = [c for c in _classes(policy) if c.score >= policy.correlation.min_score]
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

    def add(self, record: Record, entry: tuple[int, str] | None = None) -> None:
        for name, key in self._keys(record).items():
            self._index[name].add(key, record.started, record.incident_id, entry)

    def remove(self, record: Record) -> None:
        for name, key in self._keys(record).items():
            self._index[name].remove(key, record.started, record.incident_id)

    def _band(self, timeline: Timeline, target: Record, near: bool) -> Iterator[tuple[int, str]]:
        t = target.started
        w, lookback = self.scoring.within, self.scoring.lookback
        if near:
            yield from timeline.newest_first(t - w, t + w)
            return
        if lookback > w:
            yield from timeline.newest_first(t + w + 1, t + lookback)
            yield from timeline.newest_first(t - lookback, t - w - 1)

    def correlate(self, target: Record, lookup: Lookup) -> list[RelatedIncident]:
        """Equal to ``rank(target, every incident, policy)``, reading only what can matter."""
        if not self._all_rules:
            return self.scoring.rank(target, self._union(target, lookup))
        limit = self.scoring.max_related
        keys = self._keys(target)
        t_id, t_sig, t_service, t_kind = (target.incident_id, target.signature, target.service,
                                          target.kind)
        found: dict[str, Record] = {}
        group_score: int | None = None
        for cls in self._classes:
            if cls.score != group_score:
                if group_score is not None and len(found) >= limit:
                    break
                group_score = cls.score
            timeline = self._index[cls.source].get(keys[cls.source])
            if timeline is None:
                continue
            accepts = cls.accepts
            taken = 0
            last_started: int | None = None
            for started, incident_id in self._band(timeline, target, cls.near):
                if taken >= limit and started != last_started:
                    break
                if incident_id == t_id:
                    continue
                c = lookup(incident_id)
                if (c.signature == t_sig, c.service == t_service, c.kind == t_kind) not in accepts:
                    continue
                found[incident_id] = c
                taken += 1
                last_started = started
        return self.scoring.rank(target, found.values())

    def neighbours(self, target: Record, lookup: Lookup) -> list[Record]:
        """Every other incident within the lookback that one of the four conditions
        a rule needs holds for (same signature or same service and kind, any time;
        same service or same kind, near in time), in id order."""
        return [r for r in self._union(target, lookup) if r.incident_id != target.incident_id]

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
