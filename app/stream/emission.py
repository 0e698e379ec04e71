"""What the owner of an input partition emits for its records.

Every worker applies every input record (:mod:`app.stream.replica`); for the
records of the partitions the consumer group assigned to *this* worker, at or
after the offset from which it owns them (the group's committed offset when
it gained them), it emits:

- for a record that cannot be applied (not JSON, wrong types, unknown
  ``type``, missing ids, oversized, or dated more than
  ``max_future_skew_minutes`` ahead of its Kafka timestamp): a dead letter on
  ``intel.dlq`` with the reason, the source coordinates and the raw bytes;
- for an incident event that is its incident's current version once the
  cycle's records are applied: its ``intel.correlations`` record and, when it
  has related incidents, its ``incidents.notes`` note, computed by the
  replica's engine from everything applied then (point-in-time records; a
  newer version in a later record speaks for itself);
- for the incidents of its partitions whose answer a responder's verdict just
  changed: their correlation records again, now carrying the verdict.

Counts are served at ``GET /ingest/`` and logged every ``SUMMARY_INTERVAL``
seconds when they changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.contracts import CorrelateRequest, DeadLetterReason, Event, IncidentEvent, dump_json
from app.intel.correlation import note_for
from app.intel.engine import IntelEngine
from app.intel.periods import micros
from app.metrics import InputOutcome, MetricsRegistry
from app.stream.emitter import Outgoing
from app.stream.inputs import Rejected, traceparent

log = logging.getLogger(__name__)

SUMMARY_INTERVAL = 10.0
"""Seconds between two count log lines."""


@dataclass
class IngestStats:
    """In-memory counts of this worker process (reset on restart)."""

    valid: int = 0
    invalid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    _logged: tuple[int, int] = field(default=(0, 0), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON view served at ``/ingest/``."""
        return {"valid": self.valid, "invalid": self.invalid,
                "by_type": dict(sorted(self.by_type.items()))}

    def summary_due(self) -> bool:
        """True when the counts changed since the last summary line."""
        now = (self.valid, self.invalid)
        if now == self._logged:
            return False
        self._logged = now
        return True


@dataclass(frozen=True, slots=True)
class Cause:
    """The newest version of an incident among a cycle's records, and its record."""

    version: tuple[int, str]
    received_ms: int | None
    trace: tuple[tuple[str, str], ...]
    partition: int | None


def dead_letter(topic: str, name: str, record: Any, rejected: Rejected) -> Outgoing:
    """The ``intel.dlq`` record of a rejected input record of ``topic`` (real name)."""
    headers = (("intel-source-topic", topic),
               ("intel-source-partition", str(record.partition)),
               ("intel-source-offset", str(record.offset)),
               ("intel-error-class", rejected.reason), *traceparent(record.headers))
    return Outgoing("intel.dlq", record.key, dump_json(rejected.dead_letter),
                    f"dlq:{topic}:{record.partition}:{record.offset}", headers,
                    _timestamp(record), record.partition)


def _timestamp(record: Any) -> int | None:
    stamp = record.timestamp
    return None if stamp is None or stamp < 0 else int(stamp)


@dataclass
class Emission:
    """The owner's outputs for the input records of one cycle (see the module docstring)."""

    metrics: MetricsRegistry
    stats: IngestStats = field(default_factory=IngestStats)
    last: dict[str, bytes] = field(default_factory=dict)
    """Hash of the last correlation record this worker sent per incident, so an
    unchanged answer is not sent twice; pruned with the engine's retention."""
    _pruned_at: int = 0
    _dead: list[Outgoing] = field(default_factory=list)
    _causes: dict[str, Cause] = field(default_factory=dict)
    _outcomes: list[tuple[str, Event]] = field(default_factory=list)
    _relinked: set[str] = field(default_factory=set)
    _counts: Counter[tuple[str, InputOutcome, DeadLetterReason | None]] = field(
        default_factory=Counter)
    """Input records of the cycle by (topic, outcome, dead-letter reason), for the metrics."""

    def rejected(self, topic: str, name: str, record: Any, rejection: Rejected) -> None:
        """A record of an owned partition that cannot be applied."""
        self._dead.append(dead_letter(topic, name, record, rejection))
        self.stats.invalid += 1
        self._counts[(name, "dead_lettered", rejection.reason)] += 1
        log.warning("%s[%d]@%d -> intel.dlq: %s", topic, record.partition, record.offset,
                    rejection.dead_letter.error)

    def accepted(self, name: str, record: Any, event: Event) -> None:
        """A valid record of an owned partition (applied before :meth:`outputs`)."""
        self.stats.valid += 1
        self.stats.by_type[event.type] += 1
        self._outcomes.append((name, event))
        if isinstance(event, IncidentEvent):
            cause = Cause((micros(event.occurred_at), event.event_id), _timestamp(record),
                          traceparent(record.headers), record.partition)
            incident_id = event.incident.incident_id
            known = self._causes.get(incident_id)
            if known is None or cause.version > known.version:
                self._causes[incident_id] = cause

    def relinked(self, incident_ids: Iterable[str]) -> None:
        """Incidents whose correlation answer a verdict changed (their records again)."""
        self._relinked.update(incident_ids)

    def outputs(self, engine: IntelEngine) -> list[Outgoing]:
        """The cycle's dead letters, correlation records and notes, once its records
        are applied."""
        incidents = engine.book.incidents
        for name, event in self._outcomes:
            outcome: InputOutcome = "applied"
            if isinstance(event, IncidentEvent):
                record = incidents.get(event.incident.incident_id)
                if record is not None and record.version != (micros(event.occurred_at),
                                                             event.event_id):
                    outcome = "duplicate"
            self._counts[(name, outcome, None)] += 1
        for (name, outcome, reason), count in self._counts.items():
            self.metrics.record_input(name, outcome, reason, count)
        self._counts.clear()
        out, self._dead = self._dead, []
        for incident_id, cause in self._causes.items():
            record = incidents.get(incident_id)
            # Only the incident's current version speaks; a newer one speaks for itself.
            if record is not None and record.version == cause.version:
                out += self._correlation(engine, incident_id, cause)
        for incident_id in sorted(self._relinked - set(self._causes)):
            if incident_id in incidents:
                out += self._correlation(engine, incident_id, Cause((0, ""), None, (), None))
        self._causes, self._outcomes, self._relinked = {}, [], set()
        if engine.retained_from != self._pruned_at:
            self._pruned_at = engine.retained_from
            self.last = {k: v for k, v in self.last.items() if k in incidents}
        return out

    def _correlation(self, engine: IntelEngine, incident_id: str,
                     cause: Cause) -> list[Outgoing]:
        response = engine.correlate(CorrelateRequest(action="correlate",
                                                     incident_id=incident_id))
        value = dump_json(response)
        digest = hashlib.sha256(value).digest()[:16]
        if self.last.get(incident_id) == digest:
            return []
        self.last[incident_id] = digest
        key = incident_id.encode()
        out = [Outgoing("intel.correlations", key, value, f"corr:{incident_id}:{digest.hex()}",
                        cause.trace, cause.received_ms, cause.partition)]
        if response.related:
            note = note_for(incident_id, response.related, engine.policy.intel)
            out.append(Outgoing("incidents.notes", key, dump_json(note), note.note_id,
                                cause.trace, cause.received_ms, cause.partition))
        return out
