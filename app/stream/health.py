"""Worker health: is the broker there, is the replica caught up, is a partition stuck.

:class:`WorkerHealth` is plain state fed by observations with their time, so
its rules are tested without a broker: ``/readyz`` is false while the broker
does not answer (within one probe interval of losing it), while no input
partition is assigned, while the replica replays, and while some input
partition's committed offset has stood still with records behind it for
longer than ``INTEL_STUCK_PARTITION_SECONDS``. After
``INTEL_BROKER_LOSS_EXIT_SECONDS`` without a broker the worker exits non-zero
so its supervisor restarts it.

:func:`register` adds the probe (:class:`HealthProbe`): every
:data:`PROBE_SECONDS` an admin client reads the consumer group's committed
offsets (a metadata round trip that fails fast when the broker is gone), the
data path's reader gives the end offsets, and the metrics registry gets lag,
committed offsets, the watermark and the replica's size.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.api.readiness import Readiness
from app.metrics import MetricsRegistry
from app.stream.group import GroupMember
from app.stream.replica import Replica
from app.stream.settings import WorkerSettings

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


@dataclass
class HealthProbe:
    """What the probe reads: the group's committed offsets, the reader's end offsets,
    the replica; and where it writes: the health state and the metrics."""

    settings: WorkerSettings
    health: WorkerHealth
    group: GroupMember
    replica: Replica
    ends: Callable[[], dict[tuple[str, int], int]]
    metrics: MetricsRegistry
    _admin: Any = None

    def readiness(self) -> Readiness:
        """``/readyz`` of the worker."""
        return self.health.readiness(replica_ready=self.replica.ready,
                                     assigned=self.group.assigned.is_set(),
                                     now=time.monotonic())

    async def committed(self, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        settings = self.settings
        if self._admin is None:
            client = AIOKafkaAdminClient(
                bootstrap_servers=settings.bootstrap_servers,
                request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000),
                **settings.kafka_client_options())
            await client.start()
            self._admin = client
        if not assigned:
            await self._admin.list_topics()  # still a round trip: is the broker there?
            return {}
        offsets = await self._admin.list_consumer_group_offsets(
            settings.app_id, partitions=[TopicPartition(t, p) for t, p in sorted(assigned)])
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

    async def probe(self) -> bool:
        """One probe; False when the broker stayed away long enough to exit."""
        health, metrics, settings = self.health, self.metrics, self.settings
        now = time.monotonic()
        assigned = set(self.group.owned)
        try:
            done = await asyncio.wait_for(self.committed(assigned), PROBE_TIMEOUT_SECONDS * 2)
        except Exception:  # noqa: BLE001 - any failure to answer is a lost broker
            health.broker_failed(now)
            return not health.must_exit(now)
        health.broker_answered(now)
        health.forget_except(assigned)
        ends = self.ends()
        for topic, partition in sorted(assigned):
            end = ends.get((topic, partition))
            if end is None:
                continue
            position = max(done.get((topic, partition), 0), 0)  # -1: never committed
            health.observe(topic, partition, position, end, now)
            metrics.set_partition(settings.unprefixed(topic), partition, committed=position,
                                  end=max(end, position))
        replica = self.replica
        metrics.replica_ready.set(int(replica.ready))
        metrics.replica_incidents.set(len(replica.engine.book.incidents))
        watermark = replica.engine.watermark
        if watermark is not None:
            metrics.set_watermark(watermark / 1_000_000,
                                  idle_advanced=replica.engine.advanced)
        return True

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()


def register(app: IntelApp, probe: HealthProbe) -> None:
    """Add the broker probe and the progress metrics to ``app``."""

    @app.timer(PROBE_SECONDS)
    async def probe_broker() -> None:
        if not await probe.probe():
            _exit_for_broker_loss(app, probe)


def _exit_for_broker_loss(app: IntelApp, probe: HealthProbe) -> None:
    """Stop the worker with :data:`BROKER_LOST_EXIT_CODE` (once)."""
    if app.exit_code is not None:
        return
    app.exit_code = BROKER_LOST_EXIT_CODE
    log.error("no broker at %s for %.0f s (INTEL_BROKER_LOSS_EXIT_SECONDS): stopping with "
              "exit code %d so a supervisor restarts the worker",
              probe.settings.bootstrap_servers, probe.health.exit_after, app.exit_code)
    os.kill(os.getpid(), signal.SIGTERM)
