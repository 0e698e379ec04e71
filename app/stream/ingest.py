"""Ingest: validate input records; invalid ones go to ``intel.dlq``.

One bad record must never stop the worker (DESIGN.md §5): each record is
decoded with :func:`app.contracts.decode_event`; a record that fails is written
to ``intel.dlq`` keyed by its source key, with the source topic, partition,
offset, reason and raw bytes, and the stream moves on.

The counts are observable at ``GET /ingest/`` on the worker's web port and in a
log line every ``SUMMARY_INTERVAL`` seconds when they changed. Offsets are
committed only after the producer has flushed, so a DLQ record is never lost
(at-least-once: after a crash a bad record may be dead-lettered twice).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.contracts import MAX_EVENT_BYTES, DlqRecord, Event, InvalidEvent, decode_event

if TYPE_CHECKING:
    from faust.types import AgentT, EventT, StreamT

    from app.stream.app import IntelApp

__all__ = ["IngestStats", "SUMMARY_INTERVAL", "check_record", "dead_letter", "register_ingest",
           "validate"]

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
) -> Event | DlqRecord:
    """Decode one record, or describe why it goes to the dead-letter topic.

    A tombstone (no value) is invalid like any other undecodable record; the
    raw bytes of an oversized record are truncated so the dead letter stays
    below the broker's message size limit.
    """
    data = raw if raw is not None else b""
    try:
        return decode_event(data)
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


async def dead_letter(app: IntelApp, message: Any, record: DlqRecord) -> None:
    """Send a rejected record to ``intel.dlq`` keyed by its source key, and count it."""
    await app.outbox.send("intel.dlq", message.key, record.model_dump_json().encode())
    app.ingest_stats.invalid += 1
    log.warning("%s[%d]@%d -> %s: %s", message.topic, message.partition, message.offset,
                app.intel_topic("intel.dlq").get_topic_name(), record.error)


async def validate(app: IntelApp, event: EventT) -> Event | None:
    """The event a record holds, or ``None`` after dead-lettering it."""
    message = event.message
    result = check_record(message.value, key=message.key, topic=message.topic,
                          partition=message.partition, offset=message.offset)
    if isinstance(result, DlqRecord):
        await dead_letter(app, message, result)
        return None
    app.ingest_stats.valid += 1
    app.ingest_stats.by_type[result.type] += 1
    return result


def register_ingest(app: IntelApp) -> AgentT:
    """Add the side-input agent, the ``/ingest/`` view and the summary timer to ``app``.

    ``incidents.events`` is validated by the incidents agent
    (:mod:`app.stream.incidents`); this agent validates ``alerts.state`` and
    ``learning.events``, whose events only the replica folds (they feed
    learning metrics, not partitioned state).
    """
    settings = app.intel_settings
    sources = app.topic(settings.topic("alerts.state"), settings.topic("learning.events"),
                        key_serializer="raw", value_serializer="raw")
    stats = IngestStats()
    app.ingest_stats = stats

    async def ingest(stream: StreamT) -> None:
        from app.stream.batch import BATCH_SIZE, BATCH_WITHIN

        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            for event in events:
                await validate(app, event)
            await app.outbox.flush()

    agent = app.agent(sources, name="ingest")(ingest)

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

    return agent
