"""The incident book: events folded into the current state of every incident.

Incident events carry the whole incident, so folding is an upsert by
``incident_id`` where the event with the newest ``(occurred_at, event_id)``
wins (content breaks a tie), so arrival order and repeats never matter.
Learning events are kept as the facts the metrics need (post-mortem root
causes, added regression tests; their event ids are scoped to their topic);
of the alert transitions the book keeps only the firing times of those that
name an incident, as the alert book reports them kept or replaced
(:meth:`IncidentBook.relink`): the first of them is the incident's detection
moment when it has no ``detected_at``.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any, TypeVar

from app.contracts import (
    AlertTransition,
    Event,
    Incident,
    IncidentEvent,
    LearningEvent,
    LinkVerdict,
    Severity,
    Status,
)
from app.intel.alerts import AlertBook, AlertChange
from app.intel.periods import from_micros, micros
from app.intel.signature import compute_signature, derive_kind
from app.policy import KindDerivation

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Record:
    """One incident as the engine sees it: kind and signature always present.

    A slotted record rather than the validated :class:`Incident` model: a
    million of them must fit in memory, so repeated strings (service, kind,
    severity, status, signature, title, env) are interned and the start time
    is kept once, as microseconds. :attr:`incident` rebuilds the model.
    """

    incident_id: str
    service: str
    severity: Severity
    status: Status
    kind: str
    signature: str
    started: int
    version: tuple[int, str]
    title: str
    root_cause: str | None
    detected_at: datetime | None
    resolved_at: datetime | None
    env: str
    labels: tuple[tuple[str, str], ...]
    given_kind: str | None
    given_signature: str | None

    @property
    def started_at(self) -> datetime:
        return from_micros(self.started)

    def incident_fields(self) -> dict[str, Any]:
        """The fields of the :class:`Incident` this record was made from."""
        return {
            "incident_id": self.incident_id, "service": self.service, "kind": self.given_kind,
            "severity": self.severity, "status": self.status,
            "signature": self.given_signature, "title": self.title, "env": self.env,
            "started_at": self.started_at, "detected_at": self.detected_at,
            "resolved_at": self.resolved_at, "root_cause": self.root_cause,
            "labels": dict(self.labels),
        }

    @property
    def incident(self) -> Incident:
        """The incident as its newest event stated it."""
        return Incident.model_construct(**self.incident_fields())


@dataclass(frozen=True, slots=True)
class Change:
    """What one applied event did to an incident: ``before`` → ``after``."""

    before: Record | None
    after: Record


def _shared(value: str | None) -> str | None:
    return None if value is None else intern(value)


def to_record(event: IncidentEvent, rules: KindDerivation) -> Record:
    """Normalise an incident event: derive a missing kind and signature."""
    inc = event.incident
    kind = intern(inc.kind or derive_kind(inc.title, inc.labels, rules))
    signature = intern(inc.signature or compute_signature(inc.service, kind, inc.title))
    return Record(
        incident_id=inc.incident_id,
        service=intern(inc.service),
        severity=intern(inc.severity),  # type: ignore[arg-type]
        status=intern(inc.status),  # type: ignore[arg-type]
        kind=kind,
        signature=signature,
        started=micros(inc.started_at),
        version=(micros(event.occurred_at), event.event_id),
        title=intern(inc.title),
        root_cause=_shared(inc.root_cause),
        detected_at=inc.detected_at,
        resolved_at=inc.resolved_at,
        env=intern(inc.env),
        labels=tuple(inc.labels.items()),
        given_kind=kind if inc.kind == kind else _shared(inc.kind),
        given_signature=signature if inc.signature == signature else _shared(inc.signature),
    )


@dataclass(frozen=True, slots=True)
class RegressionTest:
    event_id: str
    at: int
    incident_id: str | None
    test_id: str | None


@dataclass(frozen=True, slots=True)
class Fact:
    """One learning event, as the book keeps it.

    An ``event_id`` names one fact within its topic. When the same id arrives
    again the version with the newest ``(occurred_at, content)`` wins, so the
    book ends in the same state whatever the order and number of deliveries.
    """

    version: tuple[int, str]
    incident_id: str | None
    event: LearningEvent


def _content(event: Event) -> str:
    """A total order on the content of events sharing ``(occurred_at, event_id)``."""
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()


@dataclass
class IncidentBook:
    """Current incident state plus the facts learning metrics need.

    The input rule, the same for every shell: an incident event is a version
    of its incident and the newest ``(occurred_at, event_id)`` wins (content
    breaks a tie), so a repeated or re-used event id needs no bookkeeping;
    learning events are facts named by their event id within their topic (see
    :class:`Fact`), alert transitions likewise in the alert book, which reports
    what it kept (:meth:`relink`). Ids of different topics never collide.
    """

    rules: KindDerivation
    alerts: AlertBook = field(default_factory=AlertBook)
    """Where alert transitions are kept; the book keeps what the metrics need of them."""
    incidents: dict[str, Record] = field(default_factory=dict)
    opened_at: dict[str, int] = field(default_factory=dict)
    first_firing: dict[str, int] = field(default_factory=dict)
    postmortems: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    regression_tests: dict[str, RegressionTest] = field(default_factory=dict)
    learning_facts: dict[str, Fact] = field(default_factory=dict)
    firing_times: dict[str, array[int]] = field(default_factory=dict)
    """Per incident, the sorted firing times of the kept alert transitions naming it."""
    affected: tuple[str, ...] = ()
    """Incidents whose alert or learning facts the last :meth:`apply` or :meth:`relink`
    changed."""
    _facts_of: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, event: Event) -> Change | None:
        """Fold one event in; returns the incident change, if the event made one."""
        self.affected = ()
        if isinstance(event, IncidentEvent):
            return self._upsert(event)
        if isinstance(event, AlertTransition):
            self.relink(self.alerts.add(event))
            return None
        if isinstance(event, LinkVerdict):
            return None  # a fact about a pair, kept by app.intel.verdicts
        facts = self.learning_facts
        fact = Fact((micros(event.occurred_at), _content(event)), event.incident_id, event)
        old = facts.get(event.event_id)
        if old is not None and old.version >= fact.version:
            return None
        facts[event.event_id] = fact
        touched = {f.incident_id for f in (old, fact) if f is not None and f.incident_id}
        if old is not None and old.incident_id:
            self._facts_of[old.incident_id].discard(event.event_id)
        if fact.incident_id:
            self._facts_of.setdefault(fact.incident_id, set()).add(event.event_id)
        if event.type == "regression_test.added":
            self.regression_tests[event.event_id] = RegressionTest(
                event.event_id, fact.version[0], event.incident_id, event.test_id)
        elif old is not None:
            self.regression_tests.pop(event.event_id, None)
        for incident_id in touched:
            self._refresh(incident_id)
        self.affected = tuple(sorted(touched))
        return None

    def _upsert(self, event: IncidentEvent) -> Change | None:
        record = to_record(event, self.rules)
        incident_id = record.incident_id
        if event.type == "incident.opened":
            at = record.version[0]
            self.opened_at[incident_id] = min(self.opened_at.get(incident_id, at), at)
        before = self.incidents.get(incident_id)
        if before is not None and not _newer(event, record, before):
            return None
        self.incidents[incident_id] = record
        return Change(before=before, after=record)

    def relink(self, change: AlertChange | None) -> None:
        """Follow what the alert book kept: the firing times of transitions naming an
        incident (a replaced version's time goes, the kept one's comes)."""
        self.affected = ()
        if change is None:
            return
        touched: set[str] = set()
        for kept, adding in ((change.replaced, False), (change.kept, True)):
            if kept is None or not kept.firing or not kept.shape.incident_id:
                continue
            incident_id = kept.shape.incident_id
            times = self.firing_times.setdefault(incident_id, array("q"))
            if adding:
                times.insert(bisect_right(times, kept.at), kept.at)
            else:
                del times[bisect_left(times, kept.at)]
            touched.add(incident_id)
        for incident_id in touched:
            self._refresh_firing(incident_id)
        self.affected = tuple(sorted(touched))

    def _refresh_firing(self, incident_id: str) -> None:
        times = self.firing_times.get(incident_id)
        if times is not None and not times:
            del self.firing_times[incident_id]
            times = None
        _set(self.first_firing, incident_id, times[0] if times else None)

    def _refresh(self, incident_id: str) -> None:
        """Recompute an incident's post-mortem from its current learning facts."""
        postmortem: tuple[int, str, str] | None = None
        for event_id in self._facts_of.get(incident_id, ()):
            fact = self.learning_facts[event_id]
            event = fact.event
            if event.type == "postmortem.published" and event.root_cause:
                key = (fact.version[0], event.event_id, event.root_cause)
                postmortem = key if postmortem is None or key > postmortem else postmortem
        _set(self.postmortems, incident_id, postmortem)

    def forget(self, incident_id: str) -> None:
        """Drop an incident past retention, with every fact kept about it."""
        self.incidents.pop(incident_id, None)
        self.opened_at.pop(incident_id, None)
        self.first_firing.pop(incident_id, None)
        self.firing_times.pop(incident_id, None)
        self.postmortems.pop(incident_id, None)
        for event_id in self._facts_of.pop(incident_id, ()):
            self.learning_facts.pop(event_id)
            self.regression_tests.pop(event_id, None)

    def forget_facts_before(self, cutoff: int) -> None:
        """Drop learning facts and firing times from before ``cutoff`` (retention)."""
        touched: set[str] = set()
        facts = self.learning_facts
        for event_id in [e for e, f in facts.items() if f.version[0] < cutoff]:
            fact = facts.pop(event_id)
            self.regression_tests.pop(event_id, None)
            if fact.incident_id:
                self._facts_of.get(fact.incident_id, set()).discard(event_id)
                touched.add(fact.incident_id)
        for incident_id in touched:
            self._refresh(incident_id)
        for incident_id, times in list(self.firing_times.items()):
            if times[0] < cutoff:
                del times[:bisect_left(times, cutoff)]
                self._refresh_firing(incident_id)

    def root_cause_key(self, record: Record) -> str:
        """The incident's root cause when known, else its signature.

        A published post-mortem is the considered answer, so it wins over the
        ``root_cause`` field set during the incident.
        """
        postmortem = self.postmortems.get(record.incident_id)
        if postmortem is not None:
            return f"cause:{postmortem[2]}"
        if record.root_cause:
            return f"cause:{record.root_cause}"
        return f"signature:{record.signature}"


def _newer(event: IncidentEvent, record: Record, current: Record) -> bool:
    """Whether ``record`` (from ``event``) replaces ``current``: newest version wins,
    equal versions are ordered by content, so every arrival order ends the same."""
    if record.version != current.version:
        return record.version > current.version
    return record.incident_fields() != current.incident_fields() and (
        record.incident.model_dump_json() > current.incident.model_dump_json())


def _set(table: dict[str, T], key: str, value: T | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
