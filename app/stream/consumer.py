"""The worker's Kafka consumer: short fetch waits, and no record left behind.

**Fetch wait.** Faust's aiokafka driver asks the broker to hold an empty
fetch for 1.5 s. Apache Kafka answers such a fetch as soon as a record
arrives, but a broker that holds it to the end (the embedded Tansu broker
does) turns every repartition hop of the pipeline into a wait of up to 1.5 s,
and its throughput into a stop-and-go. A short wait costs one extra fetch
request per idle consumer every ``FETCH_MAX_WAIT_MS`` and removes that stall
everywhere. The replica's own consumer uses the same wait, so the API does not
answer from a view half a second behind.

**Lost deliveries.** When a worker resumes its streams after table recovery,
faust-streaming 0.15 clears its in-memory stream queues; records it had
already fetched into them are dropped while the fetch position is past them
(upstream issue faust-streaming/faust#596). The agent never sees them, so
they are never acked. Two things follow, and both are handled here:

- Faust commits the longest run of acked offsets that starts at the committed
  offset, but lets a run start one *past* it, so a single lost record would
  be committed over and lost for good. :func:`commit_blocked` holds the
  commit back until the head record is acked (or known to be absent from the
  log).
- With a hole at the head, the partition's committed offset never moves
  again. Our agents handle each partition in order, so a hole that is still
  there, unchanged, one check later is such a loss: :func:`register_rereader`
  seeks the partition back to its committed offset and the records from
  there are read again (the agents are idempotent, docs/architecture.md §5); see
  :class:`HoleWatch` for a hole that is not a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from faust.transport.drivers import aiokafka as faust_kafka

if TYPE_CHECKING:
    from faust.types import TP

    from app.stream.app import IntelApp

__all__ = ["FETCH_MAX_WAIT_MS", "HoleWatch", "KafkaTransport", "REREAD_CHECK_SECONDS",
           "commit_blocked", "head_holes", "register_rereader"]

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50

REREAD_CHECK_SECONDS = 5.0
"""How often the head of each partition's acked offsets is checked for a hole."""


class Absent(Protocol):
    """Offsets known to be absent from a partition's log (Faust's gap intervals)."""

    def overlaps(self, begin: int, end: int | None = None) -> bool: ...


def commit_blocked(acked: Sequence[int], committed: int | None, absent: Absent) -> bool:
    """Whether a commit must wait: the record at the committed offset is not acked yet.

    ``committed`` is the next offset to read (Kafka's convention). A partition
    never committed has nothing to protect yet.
    """
    if not acked or committed is None:
        return False
    return min(acked) > committed and not absent.overlaps(committed)


Hole = tuple[int, int]
"""``(committed offset, lowest acked offset)`` of a partition whose head is missing."""


def head_holes(acked: Mapping[Any, Sequence[int]], committed: Mapping[Any, int | None],
               absent: Mapping[Any, Absent]) -> dict[Any, Hole]:
    """The partitions whose record at the committed offset is missing while later ones are acked."""
    holes: dict[Any, Hole] = {}
    for tp, offsets in acked.items():
        position = committed.get(tp)
        if position is not None and commit_blocked(offsets, position, absent[tp]):
            holes[tp] = (position, min(offsets))
    return holes


class HoleWatch:
    """Decides, check after check, what to do about holes at the head of partitions.

    A hole seen twice in a row, unchanged, is re-read (seek back to the
    committed offset). If the same hole is still there after its re-read, the
    missing offsets are not in the log at all (a transaction marker right at
    the committed offset, which Faust does not record as a gap after a seek):
    they are declared absent so the commit can pass them.
    """

    def __init__(self) -> None:
        self.seen: dict[Any, Hole] = {}
        self.reread: dict[Any, Hole] = {}

    def check(self, now: Mapping[Any, Hole]) -> tuple[dict[Any, Hole], dict[Any, Hole]]:
        """``(to re-read, absent)`` for this check's holes."""
        again = {tp: hole for tp, hole in now.items() if self.seen.get(tp) == hole}
        absent = {tp: hole for tp, hole in again.items() if self.reread.get(tp) == hole}
        reread = {tp: hole for tp, hole in again.items() if tp not in absent}
        self.reread = {tp: hole for tp, hole in self.reread.items() if now.get(tp) == hole}
        self.reread.update(reread)
        self.seen = {tp: hole for tp, hole in now.items() if tp not in again}
        return reread, absent

    def reset(self) -> None:
        """Forget everything (after a rebalance offsets and holes start over)."""
        self.seen.clear()
        self.reread.clear()


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        if commit_blocked(self._acked[tp], self._committed_offset[tp], self._gap[tp]):
            return None
        return super()._new_offset(tp)


class KafkaTransport(faust_kafka.Transport):
    """Faust's Kafka transport with the short fetch wait and the commit guard."""

    Consumer = _Consumer


def register_rereader(app: IntelApp) -> None:
    """Check every ``REREAD_CHECK_SECONDS`` for lost deliveries and read them again."""
    watch = HoleWatch()

    @app.timer(REREAD_CHECK_SECONDS)
    async def reread_lost_records() -> None:
        consumer = app.consumer
        if app.rebalancing or not isinstance(consumer, _Consumer):
            watch.reset()
            return
        assigned = consumer.assignment()
        acked = {tp: offsets for tp, offsets in consumer._acked.items() if tp in assigned}
        reread, absent = watch.check(head_holes(acked, consumer._committed_offset,
                                                consumer._gap))
        for tp, (first, acked_from) in absent.items():
            log.info("%s[%d]: offsets %d to %d are not in the log; committing past them",
                     tp.topic, tp.partition, first, acked_from - 1)
            consumer._gap[tp].addi(first, acked_from)
        for tp, (first, acked_from) in reread.items():
            log.warning("%s[%d]: records from offset %d to %d were fetched but never "
                        "processed; reading them again", tp.topic, tp.partition, first,
                        acked_from - 1)
            consumer._acked[tp].clear()
            consumer._acked_index[tp].clear()
            await consumer.seek(tp, first)
