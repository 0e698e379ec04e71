"""The emitter: every record the worker produces leaves through here.

Each output carries its deterministic id in the ``intel-id`` header, so a
consumer can drop redeliveries without parsing the value, and the CloudEvents
Kafka binding's binary-mode headers (``ce_specversion`` 1.0, ``ce_id`` = the
record id, ``ce_source``, ``ce_type`` per topic and contract version,
``ce_time``, ``content-type``), so event routers need not parse it either. A
record caused by one input record carries that record's W3C ``traceparent``.

The emitter keeps no list of pending sends: :meth:`Emitter.send_all` hands
back the broker's acknowledgements as futures, and the writer that sent the
records keeps them (:class:`app.stream.checkpoint.Checkpoint`). So one
writer's flush never waits for, or takes, another writer's records.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.partitioner import murmur2

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
    headers, the Kafka timestamp (ms) of the input record that caused it, and its
    partition when the sender knows it (else the one Kafka's default partitioner
    gives its key)."""

    topic: str
    key: bytes | None
    value: bytes | None
    record_id: str
    headers: tuple[tuple[str, str], ...] = ()
    caused_ms: int | None = None
    partition: int | None = None


class Batch(Protocol):
    """A record batch of one partition (``aiokafka``'s ``BatchBuilder``)."""

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes]] = ...) -> object | None:
        """Add a record; ``None`` when the batch is full."""
        ...


class Producer(Protocol):
    """What the emitter needs of a Kafka producer (``aiokafka.AIOKafkaProducer``)."""

    def create_batch(self) -> Batch: ...

    async def send_batch(self, batch: Batch, topic: str, *,
                         partition: int) -> asyncio.Future[Any]: ...


@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (remembered: murmur2
    here is pure Python and the same keys come back)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Emitter:
    """Turns :class:`Outgoing` records into produced Kafka records with their headers.

    Records go to the producer one batch per topic partition (the producer's own
    per-record path costs several times more), so what a cycle sends is
    acknowledged batch by batch.
    """

    def __init__(self, producer: Producer, topics: Mapping[str, str], source: str,
                 metrics: MetricsRegistry, partitions: int,
                 outputs: frozenset[str] | None = None) -> None:
        self.producer = producer
        self.topics = topics
        """Catalog topic name → real topic name (with ``INTEL_TOPIC_PREFIX``)."""
        self.source = source
        self.metrics = metrics
        self.partitions = partitions
        self.outputs = outputs if outputs is not None else frozenset(topics) - set(
            input_topics())
        """The topics counted as outputs (a verdict the API sends to an input topic is not)."""
        self.sent: dict[str, int] = {}
        self._constant = {name: ((b"ce_specversion", b"1.0"), (b"ce_source", source.encode()),
                                 (b"ce_type", cloud_event_type(name).encode()),
                                 (b"content-type", b"application/json"))
                          for name in topics}

    def partition(self, record: Outgoing) -> int:
        if record.partition is not None:
            return record.partition
        return partition_of(record.key or b"", self.partitions)

    def _headers(self, record: Outgoing, ce_time: bytes) -> list[tuple[str, bytes]]:
        record_id = record.record_id.encode()
        headers = [(ID_HEADER, record_id)]
        if record.value is not None:
            headers += [(k.decode(), v) for k, v in self._constant[record.topic]]
            headers += [("ce_id", record_id), ("ce_time", ce_time)]
        headers += [(name, value.encode()) for name, value in record.headers]
        return headers

    async def send_all(self, records: Sequence[Outgoing],
                       ce_time: str) -> list[asyncio.Future[Any]]:
        """Hand records to the producer, one batch per topic partition in their order;
        each future resolves once the broker acknowledged its batch (and raises if it
        could not be delivered)."""
        groups: dict[tuple[str, int], list[Outgoing]] = {}
        for record in records:
            groups.setdefault((record.topic, self.partition(record)), []).append(record)
        stamp = ce_time.encode()
        futures: list[asyncio.Future[Any]] = []
        for (topic, partition), group in groups.items():
            real = self.topics[topic]
            batch = self.producer.create_batch()
            for record in group:
                headers = self._headers(record, stamp)
                if batch.append(timestamp=None, key=record.key, value=record.value,
                                headers=headers) is None:
                    futures.append(await self.producer.send_batch(batch, real,
                                                                  partition=partition))
                    batch = self.producer.create_batch()
                    if batch.append(timestamp=None, key=record.key, value=record.value,
                                    headers=headers) is None:
                        raise ValueError(f"{topic}: record {record.record_id} is larger than "
                                         "a producer batch")
            futures.append(await self.producer.send_batch(batch, real, partition=partition))
            self._count(topic, group)
        return futures

    def _count(self, topic: str, records: Sequence[Outgoing]) -> None:
        self.sent[topic] = self.sent.get(topic, 0) + len(records)
        if topic in self.outputs:
            now = time.time()
            latencies = [now - r.caused_ms / 1000 for r in records
                         if r.caused_ms is not None and r.caused_ms >= 0]
            self.metrics.record_outputs(topic, len(records), latencies)
