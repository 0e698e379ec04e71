"""The input agent: the consumer group's share of the input topics.

Every worker's replica applies every input record (:mod:`app.stream.replica`);
this agent decides what *this* worker emits for the records of the input
partitions the group assigned to it:

- a record that cannot be applied (not JSON, wrong types, unknown ``type``,
  missing ids, oversized, or dated more than ``max_future_skew_minutes`` ahead
  of its Kafka timestamp) goes to ``intel.dlq`` with the reason and the raw
  bytes, and the stream moves on;
- an incident event that is its incident's newest version once the replica
  has applied it gets its ``intel.correlations`` record and, when related
  incidents exist, its ``incidents.notes`` note, computed by the replica's
  engine from everything it has applied then (point-in-time records).

A batch is acknowledged (so committed) only after the replica has applied
and published for its records and this agent's outputs are acknowledged by
the broker: a crash re-processes the batch and re-sends the same records under
the same ids, never skips one. The counts are served at ``GET /ingest/`` and
logged every ``SUMMARY_INTERVAL`` seconds when they changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.contracts import (
    MAX_EVENT_BYTES,
    CorrelateRequest,
    DlqRecord,
    Event,
    IncidentEvent,
    InvalidEvent,
    decode_event,
    dump_json,
)
from app.intel.correlation import note_for
from app.intel.periods import micros
from app.intel.watermark import future_skew_error
from app.metrics import DeadLetterReason, InputOutcome
from app.stream.outbox import TRACEPARENT

if TYPE_CHECKING:
    from faust.types import AgentT, EventT, StreamT

    from app.policy import IntelPolicy
    from app.stream.app import IntelApp

log = logging.getLogger(__name__)

SUMMARY_INTERVAL = 10.0
"""Seconds between two count log lines."""
BATCH_SIZE = 500
BATCH_WITHIN = 0.05
"""Seconds a partial batch waits for more events: bounds the added latency."""
INPUTS = ("incidents.events", "alerts.state", "learning.events")


@dataclass
class IngestStats:
    """In-memory counts of this worker process (reset on restart)."""

    valid: int = 0
    invalid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    _logged: tuple[int, int] = field(default=(0, 0), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON view served at ``/ingest/``."""
        return {
            "valid": self.valid,
            "invalid": self.invalid,
            "by_type": dict(sorted(self.by_type.items())),
        }

    def summary_due(self) -> bool:
        """True when the counts changed since the last summary line."""
        now = (self.valid, self.invalid)
        if now == self._logged:
            return False
        self._logged = now
        return True


def check_record(
    raw: bytes | None,
    *,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    received_ms: int | None,
    policy: IntelPolicy,
) -> Event | DlqRecord:
    """Decode one record, or describe why it goes to the dead-letter topic.

    The replica and the agent both call this, so they agree on every record.
    ``received_ms`` is the record's Kafka timestamp: the clock an event may not
    run ahead of (:func:`~app.intel.watermark.future_skew_error`); judging by
    it rather than by the reader's clock gives the same verdict on every
    replay. A tombstone (no value) is invalid like any other undecodable
    record; the raw bytes of an oversized record are truncated so the dead
    letter stays below the broker's message size limit.
    """
    data = raw if raw is not None else b""
    try:
        event = decode_event(data)
        received = (datetime.fromtimestamp(received_ms / 1000, UTC)
                    if received_ms is not None and received_ms >= 0 else None)
        skew = None if received is None else future_skew_error(event.occurred_at, received,
                                                                 policy)
        if skew is None:
            return event
        error = skew
    except InvalidEvent as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stream
        log.exception("unexpected error decoding %s[%d]@%d", topic, partition, offset)
        error = f"unexpected decoder error: {type(exc).__name__}: {exc}"
    if raw is None:
        error = "empty record (no value)"
    if len(data) > MAX_EVENT_BYTES:
        # Keep the dead letter itself under the brokers' message size limit.
        data = data[:MAX_EVENT_BYTES]
        error = f"{error} (raw truncated to its first {MAX_EVENT_BYTES} bytes)"
    return DlqRecord.from_raw(
        source_topic=topic,
        partition=partition,
        offset=offset,
        error=error,
        raw=data,
        key=key,
    )


def reason_class(raw: bytes | None, error: str) -> DeadLetterReason:
    """The class of a dead letter's reason, for metrics and the ``intel-error-class``
    header (the full reason is in the value)."""
    if raw is None:
        return "empty"
    if len(raw) > MAX_EVENT_BYTES:
        return "too_large"
    if error.startswith("not JSON"):
        return "not_json"
    if "ahead of the receiving clock" in error:
        return "future_skew"
    if error.startswith("unexpected decoder error"):
        return "internal"
    return "invalid"


def traceparent(message: Any) -> list[tuple[str, str]]:
    """The input record's W3C ``traceparent`` header, to carry onto what it causes."""
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == TRACEPARENT and value:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return [(TRACEPARENT, text)]
    return []


def timestamp_ms(message: Any) -> int | None:
    return None if message.timestamp is None else round(message.timestamp * 1000)


async def dead_letter(app: IntelApp, message: Any, record: DlqRecord) -> None:
    """Send a rejected record to ``intel.dlq`` keyed by its source key, and count it."""
    reason = reason_class(message.value, record.error)
    headers = [("intel-source-topic", message.topic),
               ("intel-source-partition", str(message.partition)),
               ("intel-source-offset", str(message.offset)),
               ("intel-error-class", reason), *traceparent(message)]
    await app.outbox.send("intel.dlq", message.key, record.model_dump_json().encode(),
                          f"dlq:{message.topic}:{message.partition}:{message.offset}", headers,
                          caused_ms=timestamp_ms(message))
    app.ingest_stats.invalid += 1
    app.metrics.record_input(app.intel_settings.unprefixed(message.topic), "dead_lettered",
                             reason)
    log.warning("%s[%d]@%d -> %s: %s", message.topic, message.partition, message.offset,
                app.intel_topic("intel.dlq").get_topic_name(), record.error)


async def validate(app: IntelApp, event: EventT) -> Event | None:
    """The event a record holds, or ``None`` after dead-lettering it."""
    message = event.message
    result = check_record(message.value, key=message.key, topic=message.topic,
                          partition=message.partition, offset=message.offset,
                          received_ms=timestamp_ms(message), policy=app.policy.intel)
    if isinstance(result, DlqRecord):
        await dead_letter(app, message, result)
        return None
    app.ingest_stats.valid += 1
    app.ingest_stats.by_type[result.type] += 1
    return result


@dataclass(frozen=True, slots=True)
class Cause:
    """The newest version of an incident in a batch, and the record that carried it."""

    version: tuple[int, str]
    received_ms: int | None
    trace: tuple[tuple[str, str], ...]


@dataclass
class Correlations:
    """Sends each incident's correlation record and note, skipping unchanged ones."""

    last: dict[str, bytes] = field(default_factory=dict)
    """Hash of the last correlation record this worker sent per incident."""

    async def emit(self, app: IntelApp, incident_id: str, cause: Cause) -> None:
        engine = app.replica.engine
        response = engine.correlate(CorrelateRequest(action="correlate",
                                                     incident_id=incident_id))
        value = dump_json(response)
        digest = hashlib.sha256(value).digest()[:16]
        if self.last.get(incident_id) == digest:
            return
        self.last[incident_id] = digest
        await app.outbox.send("intel.correlations", incident_id, value,
                              f"corr:{incident_id}:{digest.hex()}", cause.trace,
                              caused_ms=cause.received_ms)
        if response.related:
            note = note_for(incident_id, response.related, engine.policy.intel)
            await app.outbox.send("incidents.notes", incident_id, dump_json(note), note.note_id,
                                  cause.trace, caused_ms=cause.received_ms)


async def handle(app: IntelApp, events: list[EventT], correlations: Correlations) -> None:
    """One batch: dead letters, then (once the replica applied it) correlations."""
    heads: dict[tuple[str, int], int] = {}
    newest: dict[str, Cause] = {}
    valid: list[tuple[str, Event]] = []
    for event in events:
        message = event.message
        heads[(message.topic, message.partition)] = message.offset
        checked = await validate(app, event)
        if checked is None:
            continue
        valid.append((message.topic, checked))
        if isinstance(checked, IncidentEvent):
            cause = Cause((micros(checked.occurred_at), checked.event_id),
                          timestamp_ms(message), tuple(traceparent(message)))
            incident_id = checked.incident.incident_id
            known = newest.get(incident_id)
            if known is None or cause.version > known.version:
                newest[incident_id] = cause
    await app.replica.wait_applied(heads)
    incidents = app.replica.engine.book.incidents
    for topic, checked in valid:
        record = (incidents.get(checked.incident.incident_id)
                  if isinstance(checked, IncidentEvent) else None)
        current = record is None or record.version == (micros(checked.occurred_at),
                                                       checked.event_id)
        outcome: InputOutcome = "applied" if current else "duplicate"
        app.metrics.record_input(app.intel_settings.unprefixed(topic), outcome)
    for incident_id, cause in newest.items():
        record = incidents.get(incident_id)
        # Only the incident's current version speaks; a newer one speaks for itself.
        if record is not None and record.version == cause.version:
            await correlations.emit(app, incident_id, cause)
    await app.outbox.flush()


def register_ingest(app: IntelApp) -> list[AgentT]:
    """Add one input agent per input topic (named ``incidents``, ``alerts``,
    ``learning``), the ``/ingest/`` view and the summary timer to ``app``."""
    stats = IngestStats()
    app.ingest_stats = stats
    correlations = Correlations()

    async def ingest(stream: StreamT) -> None:
        # take_events is faust-streaming's; its StreamT protocol does not list it.
        batches = stream.take_events(BATCH_SIZE, within=BATCH_WITHIN)  # type: ignore[attr-defined]
        async for events in batches:
            await handle(app, events, correlations)

    agents = [app.agent(app.intel_topic(name), name=name.split(".")[0])(ingest)
              for name in INPUTS]

    @app.page("/ingest/")
    async def ingest_view(web: Any, request: Any) -> Any:
        """Counts of this worker: what a smoke test or an operator checks first."""
        return web.json(stats.as_dict())

    @app.timer(SUMMARY_INTERVAL)
    async def ingest_summary() -> None:
        """One log line when the counts moved; silent when idle."""
        if stats.summary_due():
            log.info("ingest: %d valid, %d invalid (to %s)", stats.valid, stats.invalid,
                     app.intel_topic("intel.dlq").get_topic_name())

    return agents
