"""The offline oracle of the stream's outputs, and a reader of the worker's topics.

What each output record means (and so what the oracle computes), for a
settled stream:

- ``intel.correlations[X]`` (latest) = ``correlate(X)`` of the offline engine
  over every event, once every change related to X was processed before X's
  last change (the test re-sends every incident's final state last);
- ``incidents.notes`` (latest for X) = ``note_for(X, related)`` when related;
- ``intel.recurrence[type:key]`` (latest) = counts of the key's incidents, in
  their final state, in the 7/30-day windows ending at the record's ``as_of``;
- ``intel.buckets[B]`` (latest) = ``buckets.published(B, B's incidents, as_of)``
  at the record's ``intel-as-of`` header, or a tombstone when that is ``None``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.contracts import format_timestamp
from app.intel import buckets as bucket_rules
from app.intel import recurrence
from app.intel.engine import IntelEngine
from app.intel.periods import micros


def read_all(bootstrap: str, topics: list[str]) -> dict[str, list[Any]]:
    """Every record of ``topics`` up to their current end."""

    async def run() -> dict[str, list[Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(t, p) for t in topics
                   for p in sorted(consumer.partitions_for_topic(t) or ())]
            out: dict[str, list[Any]] = {t: [] for t in topics}
            if not tps:
                return out
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    out[tp.topic].extend(records)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def latest(records: list[Any]) -> dict[bytes, Any]:
    """The last record per key (what a compacted topic converges to)."""
    result: dict[bytes, Any] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        result[record.key] = record
    return result


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


def recurrence_expected(engine: IntelEngine, key: str, as_of_value: Any) -> tuple[int, int]:
    key_type, value = key.split(":", 1)
    as_of = micros(as_of_value)
    starts = [r.started for r in engine.book.incidents.values()
              if recurrence.key_of(r, key_type) == value]
    return recurrence.counts_at(starts, as_of)


def bucket_expected(engine: IntelEngine, key: str, as_of_value: Any) -> bytes | None:
    from app.contracts import dump_json

    records = [r for r in engine.book.incidents.values()
               if bucket_rules.bucket_key(r, engine.policy.intel) == key]
    bucket = bucket_rules.published(key, records, as_of_value, engine.policy.intel)
    return None if bucket is None else dump_json(bucket)


__all__ = ["bucket_expected", "format_timestamp", "header", "latest", "read_all",
           "recurrence_expected"]
