"""How far the worker has got: every input record committed.

The data path commits input offsets only after the outputs of the records
before them are acknowledged (:mod:`app.stream.checkpoint`), so once the
consumer group's committed offsets reach the input topics' end offsets every
output of those inputs is on its topic. The demo waits on this before its
digest; the integration tests wait on it before comparing outputs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.stream.settings import WorkerSettings
from app.topics import input_topics


def pipeline_stages(settings: WorkerSettings) -> list[list[str]]:
    """The worker's consumed topics in processing order (one stage: the inputs)."""
    return [[settings.topic(n) for n in input_topics()]]


async def record_ends(bootstrap: str, topics: list[str],
                      options: dict[str, Any] | None = None) -> dict[TopicPartition, int]:
    """Offset after the last record of each non-empty partition.

    Read from the records rather than taken from ListOffsets alone: the
    embedded broker answers the base offset of the last record batch + 1,
    too low when that batch holds several records. Only that last batch is
    read.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, **(options or {}))
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        reported = await consumer.end_offsets(parts) if parts else {}
        ends = {tp: end for tp, end in reported.items() if end}
        if not ends:
            return {}
        consumer.assign(list(ends))
        for tp, end in ends.items():
            consumer.seek(tp, end - 1)
        while batch := await consumer.getmany(timeout_ms=300):
            for tp, records in batch.items():
                ends[tp] = max(ends[tp], records[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()


async def wait_committed(bootstrap: str, group: str, stages: list[list[str]], deadline: float,
                         options: dict[str, Any] | None = None) -> bool:
    """True once ``group`` committed every record of each stage; False at ``deadline``
    (a ``time.monotonic()`` value)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    await admin.start()
    try:
        for topics in stages:
            ends = await record_ends(bootstrap, topics, options)
            while True:
                done = await admin.list_consumer_group_offsets(group, partitions=list(ends))
                if all(tp in done and done[tp].offset >= end for tp, end in ends.items()):
                    break
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.2)
        return True
    finally:
        await admin.close()
