"""History that survives a restart of the embedded broker, which keeps nothing on disk.

``INTEL_HISTORY=durable`` (the default with the embedded broker): the worker's
data path writes every record it reads from the topics a restart cannot
recompute into the journal (:mod:`app.broker.journal`; ``journal.keep`` is
handed to :func:`app.stream.worker.build_worker`), fsynced before it applies
them, so whatever the worker has applied (answered from, counted, committed)
is on disk, even if the process is then killed outright. At the
next start, before the worker starts, :meth:`DurableHistory.restore`
re-publishes the journal into the fresh broker, partition by partition in
offset order, with the same keys, values, headers and timestamps, so the
records get their old offsets back. The worker then reads them as it would
have read the old broker: its replica rebuilds every answer, the follow-ups
and digests already emitted stay emitted, and every other output is computed
again. On a clean stop (Ctrl-C, SIGTERM) :meth:`DurableHistory.drain` also
keeps what the broker received but the worker had not read yet.

``INTEL_HISTORY=memory`` keeps nothing, as before. With
``INTEL_BOOTSTRAP_SERVERS`` set the cluster keeps the history and the
journal is off.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.broker.journal import TP, Journal, journaled_topics
from app.errors import UserError

if TYPE_CHECKING:
    from app.stream.settings import WorkerSettings

__all__ = ["HISTORY_ENV", "DurableHistory", "HistoryMode", "history_mode"]

HISTORY_ENV = "INTEL_HISTORY"
HistoryMode = Literal["durable", "memory"]
DRAIN_SECONDS = 5.0
"""A clean stop waits this long at most for the broker's last records."""


def history_mode(environ: Mapping[str, str] = os.environ) -> HistoryMode:
    """``INTEL_HISTORY``: ``durable`` (default) or ``memory``; one clear line otherwise."""
    raw = environ.get(HISTORY_ENV, "")
    value = raw.strip().lower() or "durable"
    if value == "durable":
        return "durable"
    if value == "memory":
        return "memory"
    raise UserError(f"{HISTORY_ENV}={raw!r}: must be durable or memory; fix {HISTORY_ENV} or "
                    "unset it to use the default durable")


class DurableHistory:
    """The journal of one data dir, replayed at start and written by the replica."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.directory: Path = settings.data_dir / "history"
        self.journal = Journal(self.directory,
                               {settings.topic(name): name for name in journaled_topics()})
        self._lock_fd = -1
        self.restored: int | None = None
        """Records re-published at start; ``None`` until :meth:`restore` finished."""

    def restore(self, loop: asyncio.AbstractEventLoop, settings: WorkerSettings) -> int:
        """Re-publish the journal into the (fresh, empty) broker of ``settings``; returns
        the number of records. Raises :class:`UserError` when the broker refuses them."""
        held, count = loop.run_until_complete(self._replay(settings))
        self.journal.hold(held)
        self.restored = count
        return count

    async def _replay(self, settings: WorkerSettings) -> tuple[dict[TP, int], int]:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                    linger_ms=5, client_id=f"{settings.app_id}-history",
                                    **settings.kafka_client_options())
        held: dict[TP, int] = {}
        count = 0
        try:
            await producer.start()
            for name, partition, entries in self.journal.entries():
                topic = settings.topic(name)
                if partition not in await producer.partitions_for(topic):
                    raise UserError(
                        f"{self.journal.path(name, partition)}: the history has partition "
                        f"{partition} of {name} but the topic has fewer (INTEL_PARTITIONS="
                        f"{settings.partitions}); set INTEL_PARTITIONS as when the history "
                        f"was written, or move {self.directory} away to start without it")
                sent = [await producer.send(topic, entry.value, key=entry.key,
                                            partition=partition,
                                            timestamp_ms=entry.timestamp if entry.timestamp >= 0
                                            else None, headers=list(entry.headers))
                        for entry in entries]
                placed = await asyncio.gather(*sent)
                if placed:
                    held[(topic, partition)] = placed[-1].offset + 1
                count += len(placed)
        except KafkaError as exc:
            raise UserError(f"history: re-publishing {self.directory} into the embedded broker "
                            f"failed: {exc}") from None
        finally:
            await producer.stop()
        return held, count

    def lock(self) -> None:
        """Hold the directory's lock until :meth:`close` (the kernel drops it when the
        process ends, however it ends): two writers would interleave one file.
        Raises :class:`UserError` when another process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"{self.directory}: the history is in use by another "
                            "`incident-intel run`; stop it, or set INTEL_DATA_DIR to another "
                            "directory") from None
        self._lock_fd = fd

    def drain(self, settings: WorkerSettings) -> int:
        """Journal what the broker holds beyond the journal (a clean stop, before the
        broker stops); returns the number of records. Nothing before a restore."""
        if self.restored is None:
            return 0
        return asyncio.run(self._drain(settings))

    async def _drain(self, settings: WorkerSettings) -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    group_id=None, enable_auto_commit=False,
                                    client_id=f"{settings.app_id}-history",
                                    **settings.kafka_client_options())
        kept = 0
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for topic in self.journal.names
                   for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self.journal.held.get((tp.topic, tp.partition), 0))
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + DRAIN_SECONDS
            behind = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
            while behind and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                kept += await asyncio.to_thread(
                    self.journal.append, [(tp.topic, records) for tp, records in batch.items()])
                behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        finally:
            await consumer.stop()
        return kept

    def close(self) -> None:
        self.journal.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
