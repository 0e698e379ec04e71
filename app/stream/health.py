"""Worker health: is the broker there, is the replica caught up, is a partition stuck.

:class:`WorkerHealth` is plain state fed by observations with their time, so
its rules are tested without a broker: ``/readyz`` is false while the broker
does not answer (within one probe interval of losing it), while no input
partition is assigned, while the replica replays, and while some input
partition's committed offset has stood still with records behind it for
longer than ``INTEL_STUCK_PARTITION_SECONDS``. After
``INTEL_BROKER_LOSS_EXIT_SECONDS`` without a broker the worker exits non-zero
so its supervisor restarts it.

:func:`register` adds the probe: every :data:`PROBE_SECONDS` an admin client
reads the consumer group's committed offsets (a metadata round trip that
fails fast when the broker is gone), the replica's consumer gives the end
offsets, and the metrics registry gets lag, committed offsets, the watermark
and the replica's size.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.api.readiness import Readiness

if TYPE_CHECKING:
    from app.stream.app import IntelApp

log = logging.getLogger(__name__)

PROBE_SECONDS = 3.0
"""How often the broker is probed: readiness turns false within this (plus the
probe's own timeout) of losing it."""
PROBE_TIMEOUT_SECONDS = 3.0
BROKER_LOST_EXIT_CODE = 3


@dataclass
class Progress:
    """One input partition: its committed offset, its end, and since when it stands still."""

    committed: int
    end: int
    since: float


@dataclass
class WorkerHealth:
    """What ``/readyz`` reports, from observations stamped with a monotonic ``now``."""

    stuck_after: float
    exit_after: float
    broker_lost_since: float | None = None
    probed: bool = False
    partitions: dict[tuple[str, int], Progress] = field(default_factory=dict)

    def broker_answered(self, now: float) -> None:
        self.probed = True
        if self.broker_lost_since is not None:
            log.warning("broker reachable again after %.0f s", now - self.broker_lost_since)
        self.broker_lost_since = None

    def broker_failed(self, now: float) -> None:
        self.probed = True
        if self.broker_lost_since is None:
            self.broker_lost_since = now

    def observe(self, topic: str, partition: int, committed: int, end: int,
                now: float) -> None:
        """A partition's committed and end offsets at ``now``."""
        key = (topic, partition)
        last = self.partitions.get(key)
        if last is None or last.committed != committed or committed >= end:
            self.partitions[key] = Progress(committed, end, now)
        else:
            last.end = end

    def forget_except(self, keep: set[tuple[str, int]]) -> None:
        """Drop partitions no longer assigned to this worker."""
        self.partitions = {k: v for k, v in self.partitions.items() if k in keep}

    def stuck(self, now: float) -> list[str]:
        """Partitions whose committed offset stood still behind the end for too long."""
        return sorted(f"{t}[{p}]" for (t, p), g in self.partitions.items()
                      if g.committed < g.end and now - g.since > self.stuck_after)

    def must_exit(self, now: float) -> bool:
        return self.broker_lost_since is not None and now - self.broker_lost_since >= \
            self.exit_after

    def readiness(self, *, replica_ready: bool, assigned: bool, now: float) -> Readiness:
        stuck = self.stuck(now)
        waiting = Readiness.unless(
            broker_unreachable=self.broker_lost_since is not None,
            no_partition_assigned=not assigned,
            replica_catching_up=not replica_ready,
        ).waiting_for
        if stuck:
            waiting += (f"stuck_partitions: {', '.join(stuck)}",)
        return Readiness(ready=not waiting, waiting_for=waiting)


def _assigned(app: IntelApp) -> set[tuple[str, int]]:
    try:
        return {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    except Exception:  # noqa: BLE001 - the consumer is not started yet: nothing assigned
        return set()


def readiness_of(app: IntelApp) -> Readiness:
    """``/readyz`` of the worker."""
    return app.health.readiness(replica_ready=app.replica.ready, assigned=bool(_assigned(app)),
                                now=time.monotonic())


def register(app: IntelApp) -> None:
    """Add the broker probe and the progress metrics to ``app``."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    settings = app.intel_settings
    app.health = WorkerHealth(stuck_after=settings.stuck_partition_seconds,
                              exit_after=settings.broker_loss_exit_seconds)
    admin: list[AIOKafkaAdminClient] = []

    async def committed(assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not admin:
            client = AIOKafkaAdminClient(
                bootstrap_servers=settings.bootstrap_servers,
                request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000),
                **settings.kafka_client_options())
            await client.start()
            admin.append(client)
        if not assigned:
            await admin[0].list_topics()  # still a round trip: is the broker there?
            return {}
        offsets = await admin[0].list_consumer_group_offsets(
            settings.app_id, partitions=[TopicPartition(t, p) for t, p in sorted(assigned)])
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

    @app.timer(PROBE_SECONDS)
    async def probe() -> None:
        health, metrics = app.health, app.metrics
        now = time.monotonic()
        assigned = _assigned(app)
        try:
            done = await asyncio.wait_for(committed(assigned), PROBE_TIMEOUT_SECONDS * 2)
        except Exception:  # noqa: BLE001 - any failure to answer is a lost broker
            health.broker_failed(now)
            if health.must_exit(now):
                _exit_for_broker_loss(app)
            return
        health.broker_answered(now)
        health.forget_except(assigned)
        ends = app.replica.end_offsets()
        for topic, partition in sorted(assigned):
            end = ends.get((topic, partition))
            if end is None:
                continue
            position = max(done.get((topic, partition), 0), 0)  # -1: never committed
            health.observe(topic, partition, position, end, now)
            metrics.set_partition(settings.unprefixed(topic), partition, committed=position,
                                  end=max(end, position))
        metrics.replica_ready.set(int(app.replica.ready))
        metrics.replica_incidents.set(len(app.replica.engine.book.incidents))
        watermark = app.replica.engine.watermark
        if watermark is not None:
            metrics.set_watermark(watermark / 1_000_000)

    @app.task
    async def close_admin() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for client in admin:
                await client.close()


def _exit_for_broker_loss(app: IntelApp) -> None:
    """Stop the worker with :data:`BROKER_LOST_EXIT_CODE` (once)."""
    if app.exit_code is not None:
        return
    app.exit_code = BROKER_LOST_EXIT_CODE
    log.error("no broker at %s for %.0f s (INTEL_BROKER_LOSS_EXIT_SECONDS): stopping with "
              "exit code %d so a supervisor restarts the worker",
              app.intel_settings.bootstrap_servers, app.health.exit_after, app.exit_code)
    os.kill(os.getpid(), signal.SIGTERM)
