"""The Kafka :class:`~app.sources.publishing.RecordPublisher`: one aiokafka producer.

Each record carries its id in the ``intel-id`` header and the CloudEvents
binary-mode headers, like every record the worker writes; ``ce_time`` is the
event time, so every copy of a record (a repeat, an HA twin) is the same
record. Keys go through aiokafka's default partitioner (murmur2, Kafka's own),
so a fingerprint or an incident id lands where any other producer puts it.

A delivery must be acknowledged within ``ack_timeout`` seconds (the producer's
request timeout too, so a batch given up on is not retried behind the
caller's back for long); ``reachable`` lets the host say the broker is known
to be gone (the worker's probe), which answers at once without sending
anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.stream.emitter import ID_HEADER, cloud_event_type

from .publishing import BrokerUnavailable
from .records import SourceRecord

__all__ = ["KafkaRecordPublisher"]

log = logging.getLogger(__name__)

_CLOSE_SECONDS = 5.0


def _headers(record: SourceRecord, source_prefix: str) -> list[tuple[str, bytes]]:
    pairs = [(ID_HEADER, record.record_id), ("ce_specversion", "1.0"),
             ("ce_id", record.record_id), ("ce_source", f"{source_prefix}{record.source}"),
             ("ce_type", cloud_event_type(record.topic)),
             *([("ce_time", record.time)] if record.time else []),
             ("content-type", "application/json"), *record.headers]
    return [(name, value.encode("utf-8")) for name, value in pairs]


class KafkaRecordPublisher:
    """Publishes to ``topic_name(record.topic)``; started on first use."""

    def __init__(self, bootstrap_servers: str, *, ack_timeout: float,
                 topic_name: Callable[[str], str] = str,
                 client_options: Mapping[str, Any] | None = None,
                 reachable: Callable[[], bool] = lambda: True,
                 source_prefix: str = "/incident-intel") -> None:
        self.bootstrap_servers = bootstrap_servers
        self.ack_timeout = ack_timeout
        self.topic_name = topic_name
        self.client_options = dict(client_options or {})
        self.reachable = reachable
        self.source_prefix = source_prefix
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """A producer was started (the first publication starts it)."""
        return self._producer is not None

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, acks="all",
                    request_timeout_ms=int(self.ack_timeout * 1000), **self.client_options)
                try:
                    await producer.start()
                except BaseException:
                    await self._stop(producer)
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, records: Sequence[SourceRecord]) -> None:
        if not records:
            return
        if not self.reachable():
            raise BrokerUnavailable("the broker does not answer the worker's probe")
        sent: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.ack_timeout):
                producer = await self._started()
                for record in records:
                    sent.append(await producer.send(
                        self.topic_name(record.topic), record.value,
                        key=record.key.encode("utf-8"),
                        headers=_headers(record, self.source_prefix)))
                await asyncio.gather(*sent)
        except (TimeoutError, KafkaError, OSError) as exc:
            for future in sent:  # their late outcome is nobody's business now
                future.add_done_callback(_quiet)
            raise BrokerUnavailable(
                f"not acknowledged within {self.ack_timeout:g} s ({type(exc).__name__})"
            ) from None

    async def close(self) -> None:
        """Stop the producer (bounded: a gone broker cannot hold up a stopping worker)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    @staticmethod
    async def _stop(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), _CLOSE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - stopping goes on regardless
            log.info("source publisher stopped uncleanly: %s", type(exc).__name__)


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
