"""The reader: every partition of the topics the data path needs, read once, in batches.

One aiokafka consumer outside the consumer group is assigned every partition
of the input topics and of the output topics the worker must know
(``intel.followups``, ``intel.digests``, the keyed outputs) and reads them
from the beginning. The data path (:mod:`app.stream.pipeline`) takes one
batch per cycle (:meth:`Reader.fetch`). It seeks a partition back to re-read
what a previous owner had not committed (:meth:`Reader.seek`), and pauses
the keyed output partitions this worker writes itself (it knows what it
wrote; :meth:`Reader.pause`).

"Caught up" means: every partition that was not empty at start has been read
up to the end offset seen then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from app.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

TP = tuple[str, int]
"""(real topic name, partition)."""
FETCH_WAIT_MS = 20
"""How long the broker may hold a fetch with nothing new. Apache Kafka answers as soon
as a record arrives; a broker that holds the fetch to the end (the embedded one
does) adds up to this to every record's latency, so it is short."""
PARTITION_FETCH_BYTES = 4 * 1024 * 1024


class Reader:
    """The data path's consumer of every partition (see the module docstring)."""

    def __init__(self, settings: WorkerSettings, topics: Iterable[str]) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self._consumer: Any = None
        self._tps: dict[TP, Any] = {}
        self._behind: set[TP] = set()
        self._ends: dict[TP, int] = {}

    async def start(self) -> int:
        """Assign every partition from its beginning; returns the records present then."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        settings = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None,
            enable_auto_commit=False, client_id=f"{settings.app_id}-reader",
            auto_offset_reset="earliest", max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            fetch_max_wait_ms=FETCH_WAIT_MS, **settings.kafka_client_options())
        await consumer.start()
        self._consumer = consumer
        await consumer.topics()
        self._tps = {(topic, p): TopicPartition(topic, p) for topic in self.topics
                     for p in sorted(consumer.partitions_for_topic(topic) or ())}
        consumer.assign(list(self._tps.values()))
        await consumer.seek_to_beginning(*self._tps.values())
        ends = await consumer.end_offsets(list(self._tps.values()))
        self._ends = {(tp.topic, tp.partition): end for tp, end in ends.items()}
        self._behind = {tp for tp, end in self._ends.items() if end > 0}
        return sum(self._ends.values())

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    @property
    def partitions(self) -> list[TP]:
        return sorted(self._tps)

    async def fetch(self, max_records: int, timeout_ms: int) -> list[tuple[str, Sequence[Any]]]:
        """One batch: (real topic, one partition's records in offset order) pairs."""
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if self._behind:
            for tp, records in batch.items():
                key = (tp.topic, tp.partition)
                if key in self._behind and records[-1].offset + 1 >= self._ends[key]:
                    self._behind.discard(key)
            if not batch:
                self._behind = {tp for tp in self._behind
                                if await self._consumer.position(self._tps[tp]) < self._ends[tp]}
        return [(tp.topic, records) for tp, records in batch.items()]

    @property
    def caught_up(self) -> bool:
        return not self._behind

    def seek(self, tp: TP, offset: int) -> None:
        self._consumer.seek(self._tps[tp], offset)

    def pause(self, tps: Iterable[TP]) -> None:
        self._consumer.pause(*(self._tps[tp] for tp in tps if tp in self._tps))

    def resume(self, tps: Iterable[TP]) -> None:
        self._consumer.resume(*(self._tps[tp] for tp in tps if tp in self._tps))

    def end_offsets(self, topics: Iterable[str]) -> dict[TP, int]:
        """End offset of each partition of ``topics`` as the consumer last saw it."""
        wanted = set(topics)
        if self._consumer is None:
            return {}
        ends: dict[TP, int] = {}
        for key, tp in self._tps.items():
            if key[0] in wanted:
                end = self._consumer.highwater(tp)
                if end is not None:
                    ends[key] = end
        return ends
