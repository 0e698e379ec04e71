"""The emitter: every record the worker produces leaves through here.

Each output carries its deterministic id in the ``intel-id`` header, so a
consumer can drop redeliveries without parsing the value, and the CloudEvents
Kafka binding's binary-mode headers (``ce_specversion`` 1.0, ``ce_id`` = the
record id, ``ce_source``, ``ce_type`` per topic and contract version,
``ce_time``, ``content-type``), so event routers need not parse it either. A
record caused by one input record carries that record's W3C ``traceparent``.

The emitter keeps no list of pending sends: :meth:`Emitter.send` hands back
the broker's acknowledgement as a future, and the writer that sent the record
keeps it (:class:`app.stream.checkpoint.Checkpoint`). So one writer's flush
never waits for, or takes, another writer's records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from app.topics import input_topics

if TYPE_CHECKING:
    from app.metrics import MetricsRegistry

ID_HEADER = "intel-id"
CONTRACT_VERSION = "v1"
"""Version of the topic payload contracts, in every ``ce_type``."""


def cloud_event_type(topic: str) -> str:
    """``ce_type`` of a record of the catalog topic ``topic``."""
    return f"io.incident-intel.{topic}.{CONTRACT_VERSION}"


def cloud_event_time(moment: datetime | None = None) -> str:
    """``ce_time``: when the record was produced (RFC 3339, UTC, ``Z``)."""
    moment = moment or datetime.now(UTC)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: catalog topic, key, value (``None``: tombstone), id, extra
    headers, and the Kafka timestamp (ms) of the input record that caused it."""

    topic: str
    key: bytes | None
    value: bytes | None
    record_id: str
    headers: tuple[tuple[str, str], ...] = ()
    caused_ms: int | None = None


class Producer(Protocol):
    """What the emitter needs of a Kafka producer (``aiokafka.AIOKafkaProducer``)."""

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   *, headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        ...


class Emitter:
    """Turns :class:`Outgoing` records into produced Kafka records with their headers."""

    def __init__(self, producer: Producer, topics: Mapping[str, str], source: str,
                 metrics: MetricsRegistry, outputs: frozenset[str] | None = None) -> None:
        self.producer = producer
        self.topics = topics
        """Catalog topic name → real topic name (with ``INTEL_TOPIC_PREFIX``)."""
        self.source = source
        self.metrics = metrics
        self.outputs = outputs if outputs is not None else frozenset(topics) - set(
            input_topics())
        """The topics counted as outputs (a verdict the API sends to an input topic is not)."""
        self.sent: dict[str, int] = {}

    async def send(self, record: Outgoing, ce_time: str) -> asyncio.Future[Any]:
        """Hand one record to the producer; the future resolves once the broker
        acknowledged it (and raises if it could not be delivered)."""
        headers = [(ID_HEADER, record.record_id.encode())]
        if record.value is not None:
            headers += [(name, value.encode()) for name, value in (
                ("ce_specversion", "1.0"), ("ce_id", record.record_id),
                ("ce_source", self.source), ("ce_type", cloud_event_type(record.topic)),
                ("ce_time", ce_time), ("content-type", "application/json"))]
        headers += [(name, value.encode()) for name, value in record.headers]
        future: asyncio.Future[Any] = await self.producer.send(
            self.topics[record.topic], record.value, key=record.key, headers=headers)
        self.sent[record.topic] = self.sent.get(record.topic, 0) + 1
        if record.topic in self.outputs:
            caused = record.caused_ms
            latency = None if caused is None or caused < 0 else time.time() - caused / 1000
            self.metrics.record_output(record.topic, latency_seconds=latency)
        return future
