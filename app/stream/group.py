"""Consumer-group membership: which input partitions this worker owns, and its commits.

Faust's consumer stays the worker's member of the consumer group: it joins,
takes part in rebalances (so the group decides which input partitions each
worker owns and emits for), carries the leader election the digest timer
relies on, and commits. It never fetches a record: every input record is
read once per worker, in batches, by the data path's own reader
(:mod:`app.stream.reader`), and Faust's per-record stream machinery is not
used at all. :class:`MemberConsumer` is Faust's Kafka consumer with fetching
turned off; its livelock check, which expects Faust's streams to process the
assigned partitions, is off too.

:class:`GroupMember` is what the data path sees of the group: the owned input
partitions (from Faust's ``on_partitions_assigned`` / ``on_partitions_revoked``
signals), a generation that changes with every rebalance, the committed offsets
of partitions it gains (read with an admin client), and :meth:`GroupMember.commit`.
On revocation it first lets the data path finish the cycle in flight and commit
(:attr:`GroupMember.before_revoke`), while this worker is still the owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP as FaustTP

if TYPE_CHECKING:
    import faust
    from faust.types import Message

    from app.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

TP = tuple[str, int]
"""(real topic name, partition)."""
MEMBER_FETCH_BYTES = 1024
"""Faust's consumer prefetches at most this per partition (aiokafka fetches ahead even
when nobody reads); the records are never used."""


class MemberConsumer(faust_kafka.Consumer):
    """Faust's Kafka consumer as a pure group member: joins, rebalances, commits; no fetch."""

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[FaustTP, Message]]:
        """Nothing, ever: Faust's fetch loop idles (and stops with the consumer)."""
        await self.sleep(timeout)
        return
        yield  # an async generator, like the method it replaces

    def verify_event_path(self, now: float, tp: FaustTP) -> None:
        """No Faust stream reads these partitions, so none can be stuck."""
        return None


class KafkaTransport(faust_kafka.Transport):
    """Faust's Kafka transport whose consumer is a :class:`MemberConsumer`."""

    Consumer = MemberConsumer


class GroupMember:
    """The data path's view of the consumer group (see the module docstring)."""

    def __init__(self, app: faust.App, settings: WorkerSettings,
                 input_topics: Iterable[str]) -> None:
        self.app = app
        self.settings = settings
        self.inputs = frozenset(input_topics)
        self.owned: frozenset[TP] = frozenset()
        """Input partitions this worker owns now."""
        self.generation = 0
        """Moves with every revocation and assignment."""
        self.assigned = asyncio.Event()
        """Set once the group has given this worker its first assignment (maybe empty)."""
        self.gained: set[TP] = set()
        """Partitions gained whose committed offsets the data path has not read yet."""
        self.before_revoke: Callable[[frozenset[TP]], Awaitable[None]] | None = None
        self._admin: Any = None
        # mode types receivers loosely; these take (sender, partitions, signal=...).
        app.on_partitions_revoked.connect(cast(Any, self._revoked))
        app.on_partitions_assigned.connect(cast(Any, self._assigned))

    def _inputs_of(self, tps: Iterable[Any]) -> frozenset[TP]:
        return frozenset((tp.topic, tp.partition) for tp in tps if tp.topic in self.inputs)

    async def _revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Faust's ``on_partitions_revoked``: ``args[0]`` is the set of partitions."""
        lost = self._inputs_of(args[0]) & self.owned
        if lost and self.before_revoke is not None:
            await self.before_revoke(lost)
        self.owned -= lost
        self.gained -= lost
        self.generation += 1

    async def _assigned(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Faust's ``on_partitions_assigned``: ``args[0]`` is the whole new assignment."""
        owned = self._inputs_of(args[0])
        self.gained = (self.gained & owned) | (owned - self.owned)
        self.owned = owned
        self.generation += 1
        self.assigned.set()

    def leader(self) -> bool:
        return bool(self.app.is_leader())

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The group's committed offset of each partition (0 where none was committed)."""
        from aiokafka import TopicPartition

        wanted = sorted(tps)
        if not wanted:
            return {}
        admin = await self._admin_client()
        found = await admin.list_consumer_group_offsets(
            self.settings.app_id, partitions=[TopicPartition(t, p) for t, p in wanted])
        out = {tp: 0 for tp in wanted}
        for tp, meta in found.items():
            out[(tp.topic, tp.partition)] = max(0, meta.offset)
        return out

    async def commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit ``offsets`` of partitions this worker still owns, through the member.

        False when the group moved on (a rebalance in between): the next owner
        reads from the last committed offset and emits the same ids again.
        """
        mine = {FaustTP(t, p): o for (t, p), o in offsets.items() if (t, p) in self.owned}
        if not mine:
            return False
        # Faust's own commit() commits offsets its streams acknowledged; the data path
        # acknowledges nothing to Faust, so it commits its offsets itself.
        consumer: Any = self.app.consumer
        return bool(await consumer._commit(mine))  # noqa: SLF001

    async def _admin_client(self) -> Any:
        if self._admin is None:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers,
                                        **self.settings.kafka_client_options())
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()
