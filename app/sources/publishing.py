"""The producing side of the receivers: a small protocol, and the memory that keeps
repeats off the topic.

A receiver answers 2xx only after every record of the delivery is acknowledged
by the broker, so a 2xx never loses an alert. Whatever produces the records
implements :class:`RecordPublisher`; the worker's is the Kafka one
(:mod:`app.sources.kafka`), and the stream core may bring its own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from .records import SourceRecord

__all__ = ["AcknowledgedRecords", "BrokerUnavailable", "RecordPublisher"]


class BrokerUnavailable(Exception):
    """The records could not be acknowledged now; the sender should retry (503)."""


class RecordPublisher(Protocol):
    """Publishes records to their catalog topics."""

    async def publish(self, records: Sequence[SourceRecord]) -> None:
        """Return once every record is acknowledged by the broker; raise
        :class:`BrokerUnavailable` when that cannot happen now (nothing may be
        assumed sent then, though some records may still arrive)."""
        ...


def _identity(record: SourceRecord) -> bytes:
    digest = hashlib.sha256()
    for part in (record.topic, record.key, record.record_id):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    digest.update(record.value)
    return digest.digest()[:20]


class AcknowledgedRecords:
    """Publishes through a :class:`RecordPublisher`, skipping records this process already
    had acknowledged, and publishing concurrent copies of a record once.

    Alertmanager re-sends whole groups, an HA pair sends each twice (often at the
    same moment), senders retry: without this the topic would hold each
    transition many times (harmless to the engine, which counts an ``event_id``
    once, but noise on the topic). A record is remembered only once the broker
    acknowledged it, at most ``capacity`` of them (the oldest forgotten first).
    """

    def __init__(self, publisher: RecordPublisher, capacity: int) -> None:
        self.publisher = publisher
        self.capacity = capacity
        self._done: OrderedDict[bytes, None] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[None]] = {}

    async def publish(self, records: Sequence[SourceRecord]) -> tuple[int, int]:
        """Publish what is new; ``(published, repeats)``. Raises :class:`BrokerUnavailable`
        (also when a copy in flight for another delivery failed)."""
        mine: dict[bytes, SourceRecord] = {}
        theirs: list[asyncio.Future[None]] = []
        for record in records:
            key = _identity(record)
            if key in self._done:
                self._done.move_to_end(key)  # recently repeated: remembered longest
                continue
            if key in mine:
                continue
            pending = self._pending.get(key)
            if pending is not None:
                theirs.append(pending)
            else:
                mine[key] = record
        repeats = len(records) - len(mine)
        if mine:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for key in mine:
                self._pending[key] = future
            try:
                await self.publisher.publish(list(mine.values()))
            except BaseException as exc:
                failure = exc if isinstance(exc, BrokerUnavailable) else BrokerUnavailable(
                    "publishing was interrupted")
                future.set_exception(failure)
                future.exception()  # retrieved: no "never retrieved" warning without waiters
                raise
            else:
                future.set_result(None)
                self._remember(mine)
            finally:
                for key in mine:
                    self._pending.pop(key, None)
        for pending in theirs:
            await asyncio.shield(pending)
        return len(mine), repeats

    def _remember(self, keys: dict[bytes, SourceRecord]) -> None:
        if self.capacity <= 0:
            return
        for key in keys:
            self._done[key] = None
        while len(self._done) > self.capacity:
            self._done.popitem(last=False)
