"""The checkpoint owns a writer's commit order: flush its own sends → mark applied → commit.

The producer here acknowledges a record only when the test says so: that is what
a real broker cannot be made to do on cue, and what shows whose records a
commit waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from app.metrics import MetricsRegistry
from app.stream.checkpoint import Checkpoint, DeliveryFailed
from app.stream.emitter import Emitter, Outgoing


class HeldProducer:
    """Keeps every batch's acknowledgement pending until :meth:`ack` or :meth:`fail`
    (a batch is named by the key of its first record)."""

    def __init__(self) -> None:
        self.acks: dict[bytes, asyncio.Future[Any]] = {}

    def create_batch(self) -> KeysBatch:
        return KeysBatch()

    async def send_batch(self, batch: KeysBatch, topic: str, *,
                         partition: int) -> asyncio.Future[Any]:
        first = batch.keys[0]
        assert first is not None
        self.acks[first] = asyncio.get_running_loop().create_future()
        return self.acks[first]

    def ack(self, key: bytes) -> None:
        self.acks[key].set_result(None)

    def fail(self, key: bytes) -> None:
        self.acks[key].set_exception(ConnectionError("broker gone"))


class KeysBatch:
    """A batch that keeps the keys of its records."""

    def __init__(self) -> None:
        self.keys: list[bytes | None] = []

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None,
               headers: Any = ()) -> object:
        self.keys.append(key)
        return True


def _record(key: bytes) -> Outgoing:
    # Each record in a partition of its own: one batch, one acknowledgement each.
    return Outgoing("intel.correlations", key, b"{}", f"id-{key.decode()}",
                    partition=ord(key[-1:]) % 64)


def _emitter(producer: HeldProducer) -> Emitter:
    return Emitter(producer, {"intel.correlations": "intel.correlations"}, "/test",
                   MetricsRegistry(), 64)


def test_each_writers_commit_waits_for_its_own_records_only() -> None:
    async def scenario() -> list[str]:
        producer = HeldProducer()
        emitter = _emitter(producer)
        done: list[str] = []

        def tracked(name: str) -> Checkpoint:
            async def commit(offsets: Mapping[tuple[str, int], int]) -> bool:
                done.append(name)
                return True

            return Checkpoint(emitter, commit=commit)

        cycle, digest = tracked("cycle"), tracked("digest")
        await cycle.send(_record(b"c1"))
        await digest.send(_record(b"d1"))
        cycle.cover({}, {("incidents.events", 0): 1})
        digest.cover({}, {("incidents.events", 1): 1})
        committing = [asyncio.create_task(cycle.commit()),
                      asyncio.create_task(digest.commit())]
        producer.ack(b"d1")  # the digest's record is acknowledged first
        await asyncio.sleep(0.01)
        # The digest finished; the cycle's record is still unacknowledged, so the
        # cycle's commit has not returned (a shared pending list would have let it).
        assert done == ["digest"] and not committing[0].done()
        producer.ack(b"c1")
        await asyncio.gather(*committing)
        return done

    assert asyncio.run(scenario()) == ["digest", "cycle"]


def test_flush_then_mark_applied_then_commit() -> None:
    async def scenario() -> list[str]:
        producer = HeldProducer()
        steps: list[str] = []

        async def commit(offsets: Mapping[tuple[str, int], int]) -> bool:
            steps.append(f"commit {dict(offsets)}")
            return True

        checkpoint = Checkpoint(_emitter(producer),
                                applied=lambda positions: steps.append(
                                    f"applied {dict(positions)}"),
                                commit=commit)
        await checkpoint.send(_record(b"a"))
        checkpoint.cover({("in", 0): 7}, {("in", 0): 7})
        task = asyncio.create_task(checkpoint.commit())
        await asyncio.sleep(0.01)
        steps.append("acknowledged")
        producer.ack(b"a")
        assert await task
        return steps

    assert asyncio.run(scenario()) == ["acknowledged", "applied {('in', 0): 7}",
                                       "commit {('in', 0): 7}"]


def test_a_record_the_broker_refused_stops_the_commit_before_anything_is_final() -> None:
    async def scenario() -> list[str]:
        producer = HeldProducer()
        steps: list[str] = []

        async def commit(offsets: Mapping[tuple[str, int], int]) -> bool:
            steps.append("commit")
            return True

        checkpoint = Checkpoint(_emitter(producer), applied=lambda p: steps.append("applied"),
                                commit=commit)
        await checkpoint.send_all([_record(b"a"), _record(b"b")])
        checkpoint.cover({("in", 0): 2}, {("in", 0): 2})
        producer.ack(b"a")
        producer.fail(b"b")
        with pytest.raises(DeliveryFailed, match="1 of 2 records"):
            await checkpoint.commit()
        return steps

    assert asyncio.run(scenario()) == []
