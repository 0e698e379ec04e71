"""Run the worker's data path over lists of records, without a broker.

:class:`StreamHarness` builds the same parts :func:`app.stream.worker.build_worker`
builds — replica, publisher, emission, cycle, emitter and a checkpoint per cycle —
around an in-memory producer, and runs each batch a test gives it through the
pipeline's own :func:`app.stream.pipeline.deliver` (journal, apply, send,
commit). Every record the worker would produce is
kept per output topic with its headers (:attr:`StreamHarness.sent`), and the
offsets a cycle would commit are recorded (:attr:`StreamHarness.committed`).
What the consumer group would say (owned partitions and from which offset,
leadership) is the test's to set.

    harness = StreamHarness(policy, partitions=3)
    harness.feed("incidents.events", [(b"inc-1", event_bytes)])
    harness.settle()
    harness.latest("intel.recurrence")   # key → last value, as a compacted topic keeps it

Integration tests run the real worker against a real broker; this is for the
rules of the data path (what is emitted, when, by whom), where a broker would
only add time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.intel import publication
from app.metrics import MetricsRegistry
from app.policy import Policy
from app.stream.cycle import Cycle, Ownership, Step, TopicNames
from app.stream.emission import Emission
from app.stream.emitter import Emitter, partition_of
from app.stream.inputs import Received
from app.stream.pipeline import Journal, deliver
from app.stream.publisher import Publisher
from app.stream.replica import Replica
from app.topics import default_catalog, input_topics

__all__ = ["Produced", "StreamHarness"]

TP = tuple[str, int]


@dataclass(frozen=True)
class Produced:
    """One record the worker produced: its topic (catalog name), key, value, headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def record_id(self) -> str:
        return self.headers["intel-id"]


class _MemoryBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, dict[str, str]]] = []

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes]] = ()) -> object | None:
        self.records.append((key, value, {k: v.decode() for k, v in headers}))
        return True


class _MemoryProducer:
    """A producer whose every batch is acknowledged at once."""

    def __init__(self, catalog: Mapping[str, str]) -> None:
        self.catalog = catalog
        self.records: list[Produced] = []

    def create_batch(self) -> _MemoryBatch:
        return _MemoryBatch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.records += [Produced(self.catalog[topic], key, value, headers)
                         for key, value, headers in batch.records]
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class StreamHarness:
    """The data path over lists (see the module docstring)."""

    def __init__(self, policy: Policy, *, partitions: int = 4, prefix: str = "",
                 owned: Iterable[int] | None = None, leader: bool = False,
                 settle_seconds: float = 1.0, journal: Journal | None = None) -> None:
        self.partitions = partitions
        catalog = list(default_catalog().topics)
        self.real = {name: f"{prefix}{name}" for name in catalog}
        self.inputs = inputs = input_topics()
        read = {name: self.real[name] for name in
                (*inputs, "intel.followups", "intel.digests", *publication.KEYED_TOPICS)}
        self.names = TopicNames.of(read, inputs)
        self.metrics = MetricsRegistry()
        self.replica = Replica(policy, read_workers=1)
        self.publisher = Publisher(partitions, self.metrics, settle_seconds)
        self.publisher.clock = lambda: self.now  # a publication takes no time: never spaced out
        self.emission = Emission(self.metrics)
        self.cycle = Cycle(self.replica, self.publisher, self.emission, self.names)
        self._producer = _MemoryProducer({v: k for k, v in self.real.items()})
        self.emitter = Emitter(self._producer, self.real, "/incident-intel/test", self.metrics,
                               partitions)
        self.owned = frozenset(range(partitions) if owned is None else owned)
        """Partition numbers this worker owns (of every input topic)."""
        self.floors: dict[TP, int] = {}
        """Offsets from which this worker emits, per owned input partition (default 0)."""
        self.leader = leader
        self.journal = journal
        self.caught_up = True
        self.now = 0.0
        """The monotonic clock the settle, publication and velocity rules read (seconds)."""
        self.wall: float | None = None
        """The wall clock (Unix seconds) the idle rule reads; it moves with :attr:`now`.
        ``None`` (the default): event time moves only with events."""
        self.cycle_seconds = 2 * self.publisher.keyed_seconds
        """How far :attr:`now` moves in one cycle: by default every cycle publishes."""
        self.committed: dict[TP, int] = {}
        self._next: dict[TP, int] = {}
        self._loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.replica.close()
        self._loop.close()

    # ------------------------------------------------------------------ feeding

    def record(self, topic: str, key: bytes | None, value: bytes | None, *,
               partition: int | None = None, timestamp: int = -1,
               headers: Sequence[tuple[str, bytes]] = ()) -> tuple[str, Received]:
        """One record of catalog topic ``topic`` at the next offset of its partition
        (by default the partition Kafka's default partitioner gives its key)."""
        if partition is None:
            partition = partition_of(key or b"", self.partitions)
        tp = (self.real[topic], partition)
        offset = self._next.get(tp, 0)
        self._next[tp] = offset + 1
        return self.real[topic], Received(key, value, partition, offset, timestamp,
                                          tuple(headers))

    def feed(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> Step:
        """One cycle over ``(key, value)`` records of ``topic``, each in its key's partition."""
        batch: dict[TP, list[Received]] = {}
        for key, value in records:
            real, received = self.record(topic, key, value)
            batch.setdefault((real, received.partition), []).append(received)
        return self.run([(tp[0], records) for tp, records in sorted(batch.items())])

    def run(self, fetch: Sequence[tuple[str, Sequence[Any]]]) -> Step:
        """One cycle over a fetched batch ((real topic, one partition's records) pairs),
        sent and committed through a checkpoint as the worker does."""
        floors = {(self.real[name], p): self.floors.get((self.real[name], p), 0)
                  for name in self.inputs for p in self.owned}
        ownership = Ownership(floors, self.owned, self.leader)

        async def commit(offsets: Mapping[TP, int]) -> bool:
            self.committed.update(offsets)
            self.floors.update(offsets)
            return True

        step = self._loop.run_until_complete(deliver(
            fetch, self.cycle, ownership, self.emitter, journal=self.journal,
            caught_up=self.caught_up, now=self.now, wall=self.wall,
            to_commit=lambda offsets: offsets, commit=commit))
        self.elapse(self.cycle_seconds)
        return step

    def elapse(self, seconds: float) -> None:
        """Move both clocks on by ``seconds``."""
        self.now += seconds
        if self.wall is not None:
            self.wall += seconds

    def settle(self) -> Step:
        """Let the inputs pause long enough for the settle rule, then run an empty cycle."""
        self.elapse(self.publisher.settle_seconds + 1.0)
        return self.run([])

    def idle(self, seconds: float) -> Step:
        """Let the inputs pause for ``seconds``, then run an empty cycle."""
        self.elapse(seconds)
        return self.run([])

    # ------------------------------------------------------------------ reading

    @property
    def sent(self) -> list[Produced]:
        return list(self._producer.records)

    def to(self, topic: str) -> list[Produced]:
        """Every record produced to catalog topic ``topic``, in order."""
        return [r for r in self._producer.records if r.topic == topic]

    def latest(self, topic: str) -> dict[bytes | None, bytes | None]:
        """The last value per key of ``topic``, as a compacted topic keeps it."""
        return {r.key: r.value for r in self.to(topic)}
