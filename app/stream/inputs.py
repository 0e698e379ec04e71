"""Input records: how one consumer record becomes an event, or a dead letter.

Every worker's replica checks every input record with :func:`check_record`;
the owner of the record's partition sends the dead letter of a rejected one
(:mod:`app.stream.emission`). Both decide from the record alone (its bytes,
key and Kafka timestamp), so every worker and every replay agree on every
record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.contracts import (
    MAX_EVENT_BYTES,
    DeadLetterReason,
    DlqRecord,
    Event,
    InvalidEvent,
    decode_event,
)
from app.intel.watermark import future_skew_error
from app.policy import IntelPolicy

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
"""The W3C trace context header, carried from an input record to what it causes."""


@dataclass(frozen=True, slots=True)
class Received:
    """A record as a consumer hands it over: the fields the worker reads.

    ``aiokafka``'s ``ConsumerRecord`` has these attributes too, so either can be
    passed where a :class:`Received` is expected.
    """

    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    timestamp: int = -1
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record cannot be applied: its dead letter and the reason's class."""

    reason: DeadLetterReason
    dead_letter: DlqRecord


def check_record(raw: bytes | None, *, key: bytes | None, topic: str, partition: int,
                 offset: int, received_ms: int | None, policy: IntelPolicy) -> Event | Rejected:
    """Decode one record, or say why it goes to the dead-letter topic.

    ``received_ms`` is the record's Kafka timestamp: the clock an event may not
    run ahead of (:func:`~app.intel.watermark.future_skew_error`); judging by it
    rather than by the reader's clock gives the same verdict on every replay. A
    tombstone (no value) is invalid like any other undecodable record; the raw
    bytes of an oversized record are truncated so the dead letter stays below
    the broker's message size limit.
    """
    data = raw if raw is not None else b""
    reason: DeadLetterReason
    try:
        event = decode_event(data)
        received = (datetime.fromtimestamp(received_ms / 1000, UTC)
                    if received_ms is not None and received_ms >= 0 else None)
        skew = None if received is None else future_skew_error(event.occurred_at, received,
                                                                 policy)
        if skew is None:
            return event
        error, reason = skew, "future_skew"
    except InvalidEvent as exc:
        error, reason = str(exc), exc.reason
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stream
        log.exception("unexpected error decoding %s[%d]@%d", topic, partition, offset)
        error, reason = f"unexpected decoder error: {type(exc).__name__}: {exc}", "internal"
    if raw is None:
        error, reason = "empty record (no value)", "empty"
    if len(data) > MAX_EVENT_BYTES:
        data = data[:MAX_EVENT_BYTES]
        error = f"{error} (raw truncated to its first {MAX_EVENT_BYTES} bytes)"
    return Rejected(reason, DlqRecord.from_raw(source_topic=topic, partition=partition,
                                               offset=offset, error=error, raw=data, key=key))


def traceparent(headers: Iterable[tuple[str, bytes]] | None) -> tuple[tuple[str, str], ...]:
    """The record's W3C ``traceparent`` header, to carry onto what it causes."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            return ((TRACEPARENT, value.decode("ascii", "replace")),)
    return ()
