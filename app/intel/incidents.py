"""The incident book: events folded into the current state of every incident.

Incident events carry the whole incident, so folding is an upsert by
``incident_id`` where the event with the newest ``occurred_at`` wins (ties
broken by the larger ``event_id``, so arrival order never matters), and a
repeated ``event_id`` is ignored. Alert transitions and learning events are
kept as the facts the metrics need: the first ``firing`` of an alert linked to
an incident, post-mortem root causes and added regression tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.contracts import AlertTransition, Event, Incident, IncidentEvent, LearningEvent
from app.intel.periods import micros
from app.intel.signature import compute_signature, derive_kind
from app.policy import KindDerivation


@dataclass(frozen=True, slots=True)
class Record:
    """One incident as the engine sees it: kind and signature always present."""

    incident: Incident
    kind: str
    signature: str
    started: int
    version: tuple[int, str]

    @property
    def incident_id(self) -> str:
        return self.incident.incident_id

    @property
    def service(self) -> str:
        return self.incident.service

    @property
    def severity(self) -> str:
        return self.incident.severity

    @property
    def status(self) -> str:
        return self.incident.status


@dataclass(frozen=True, slots=True)
class Change:
    """What one applied event did to an incident: ``before`` → ``after``."""

    before: Record | None
    after: Record


def to_record(event: IncidentEvent, rules: KindDerivation) -> Record:
    """Normalise an incident event: derive a missing kind and signature."""
    inc = event.incident
    kind = inc.kind or derive_kind(inc.title, inc.labels, rules)
    signature = inc.signature or compute_signature(inc.service, kind, inc.title)
    return Record(
        incident=inc,
        kind=kind,
        signature=signature,
        started=micros(inc.started_at),
        version=(micros(event.occurred_at), event.event_id),
    )


@dataclass(frozen=True, slots=True)
class RegressionTest:
    event_id: str
    at: int
    incident_id: str | None
    test_id: str | None


@dataclass
class IncidentBook:
    """Current incident state plus the facts learning metrics need."""

    rules: KindDerivation
    incidents: dict[str, Record] = field(default_factory=dict)
    seen_events: set[str] = field(default_factory=set)
    opened_at: dict[str, int] = field(default_factory=dict)
    first_firing: dict[str, int] = field(default_factory=dict)
    postmortems: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    regression_tests: dict[str, RegressionTest] = field(default_factory=dict)

    def apply(self, event: Event) -> Change | None:
        """Fold one event in; returns the incident change, if the event made one."""
        if event.event_id in self.seen_events:
            return None
        self.seen_events.add(event.event_id)
        at = micros(event.occurred_at)
        if isinstance(event, AlertTransition):
            if event.to_state == "firing" and event.incident_id:
                self._keep_min(self.first_firing, event.incident_id, at)
            return None
        if isinstance(event, LearningEvent):
            self._learn(event, at)
            return None
        if event.type == "incident.opened":
            self._keep_min(self.opened_at, event.incident.incident_id, at)
        record = to_record(event, self.rules)
        before = self.incidents.get(record.incident_id)
        if before is not None and before.version >= record.version:
            return None
        self.incidents[record.incident_id] = record
        return Change(before=before, after=record)

    def _learn(self, event: LearningEvent, at: int) -> None:
        if event.type == "regression_test.added":
            self.regression_tests[event.event_id] = RegressionTest(
                event.event_id, at, event.incident_id, event.test_id
            )
        elif event.incident_id and event.root_cause:
            key = (at, event.event_id, event.root_cause)
            current = self.postmortems.get(event.incident_id)
            if current is None or key > current:
                self.postmortems[event.incident_id] = key

    @staticmethod
    def _keep_min(table: dict[str, int], key: str, at: int) -> None:
        if key not in table or at < table[key]:
            table[key] = at

    def root_cause_key(self, record: Record) -> str:
        """The incident's root cause when known, else its signature.

        A published post-mortem is the considered answer, so it wins over the
        ``root_cause`` field set during the incident.
        """
        postmortem = self.postmortems.get(record.incident_id)
        if postmortem is not None:
            return f"cause:{postmortem[2]}"
        if record.incident.root_cause:
            return f"cause:{record.incident.root_cause}"
        return f"signature:{record.signature}"
