"""The consumer loop: read ``intel.followups`` in its own group, deliver, remember, commit.

One record at a time per partition, in offset order. The offset after a record
is committed only once the record is settled: delivered and written to the
ledger, skipped as already delivered, or dead-lettered (acknowledged by the
broker). A stop or a crash before that leaves the record uncommitted, so it
is read again; the ledger (and the receiver's ``Idempotency-Key``) keep the
second reading from delivering it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError

from app.contracts import DlqRecord
from app.errors import UserError

from .decision import (
    DeadLetter,
    Delivered,
    Retry,
    RetryPolicy,
    Skip,
    on_attempt,
    on_record,
)
from .ledger import Ledger
from .sinks import Sink

log = logging.getLogger(__name__)

READY = "deliverer ready"


class BrokerUnavailable(UserError):
    """The broker cannot be reached or refused a send: exit 1 so a supervisor restarts us."""

    exit_code = 1


class Stopping(Exception):
    """Raised inside a record's handling when a stop was asked for: leave it uncommitted."""


@dataclass(frozen=True)
class DelivererSettings:
    bootstrap_servers: str
    topic: str
    dlq_topic: str
    group_id: str
    retry: RetryPolicy


@dataclass
class Deliverer:
    """Settles each follow-up record; see the module docstring for the order of effects."""

    settings: DelivererSettings
    sink: Sink
    ledger: Ledger
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.delivered: set[str] = self.ledger.keys | self.sink.delivered()

    async def _wait(self, delay: float) -> None:
        """Back off for ``delay`` seconds, or raise :class:`Stopping` when a stop comes first."""
        try:
            await asyncio.wait_for(self.stop.wait(), delay)
        except TimeoutError:
            return
        raise Stopping

    async def settle(self, message: Any, producer: AIOKafkaProducer) -> str:
        """Deliver, skip or dead-letter one record; returns what happened."""
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        action = on_record(message.value, self.delivered)
        if isinstance(action, Skip):
            log.info("%s: %s already delivered, skipped", where, action.dedupe_key)
            return "skipped"
        attempt = 1
        while not isinstance(action, DeadLetter):
            if self.stop.is_set():
                raise Stopping
            key = action.dedupe_key
            result = await self.sink.deliver(action.follow_up)
            decision = on_attempt(key, attempt, result, self.settings.retry)
            if isinstance(decision, Delivered):
                self.ledger.record(key, topic=message.topic, partition=message.partition,
                                   offset=message.offset)
                self.delivered.add(key)
                log.info("%s: delivered %s (attempt %d)", where, key, attempt)
                return "delivered"
            if isinstance(decision, DeadLetter):
                action = decision
                break
            assert isinstance(decision, Retry)
            log.warning("%s: attempt %d for %s failed (%s); retry in %.1fs", where, attempt,
                        key, result.detail, decision.delay)
            await self._wait(decision.delay)
            attempt = decision.attempt
        record = DlqRecord.from_raw(source_topic=message.topic, partition=message.partition,
                                    offset=message.offset, error=action.reason,
                                    raw=message.value or b"", key=message.key)
        await producer.send_and_wait(self.settings.dlq_topic, record.model_dump_json().encode(),
                                     key=message.key)
        log.warning("%s -> %s: %s", where, self.settings.dlq_topic, action.reason)
        return "dead_lettered"

    async def run(self) -> None:
        """Consume until :attr:`stop` is set; the current record is finished or left uncommitted."""
        settings = self.settings
        consumer = AIOKafkaConsumer(
            settings.topic, bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info("%s: %s as group %s", READY, settings.topic, settings.group_id)
                await self._consume(consumer, producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while not self.stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    try:
                        outcome = await self.settle(message, producer)
                    except Stopping:
                        return
                    self.counts[outcome] += 1
                    await self._commit(consumer, tp, message.offset + 1)
                    if self.stop.is_set():
                        return

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
        except CommitFailedError as exc:
            # The partition moved to another member: it will read the record again and
            # the ledger (or the receiver's Idempotency-Key) stops a second delivery.
            log.warning("commit of %s@%d failed: %s", tp, offset, exc)
