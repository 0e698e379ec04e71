"""The worker, composed in one place: every part built here and handed its collaborators.

:func:`build_worker` makes the Faust app (membership, leader, timers, web
server; :mod:`app.stream.app`) and around it the parts of the data path —
the replica (:mod:`app.stream.replica`), the reader, the group member, the
emitter, the publisher, the emission, the cycle and the pipeline that runs it
— and the digest timer, the health probe and the live view the API serves.
No part reaches through another to a third: each gets what it uses here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from app.api.readiness import Readiness
from app.contracts import (
    FollowUp,
    LinkVerdict,
    Note,
    QuarterVelocity,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
    dump_json,
)
from app.intel import publication
from app.metrics import MetricsRegistry
from app.policy import Policy, load_policy
from app.stream import digest_timer, health
from app.stream.app import IntelApp, catalog_topics, create_app
from app.stream.checkpoint import Checkpoint
from app.stream.cycle import Cycle, TopicNames
from app.stream.digest_timer import DigestTimer, wall_clock
from app.stream.emission import SUMMARY_INTERVAL, Emission
from app.stream.emitter import Batch, Emitter, Outgoing
from app.stream.group import GroupMember
from app.stream.health import HealthProbe, WorkerHealth
from app.stream.pipeline import Journal, Pipeline
from app.stream.publisher import Publisher
from app.stream.reader import Reader
from app.stream.replica import Replica
from app.stream.settings import WorkerSettings
from app.topics import input_topics

if TYPE_CHECKING:
    from app.api.live import Query, T

log = logging.getLogger(__name__)

READ_BACK = ("intel.followups", "intel.digests", *publication.KEYED_TOPICS)
"""Output topics the data path reads: the follow-up dedupe table, the weeks produced,
and what other writers said for keyed records."""
PRODUCER_BATCH_BYTES = 1024 * 1024


@dataclass
class Worker:
    """The parts of one worker (see the module docstring)."""

    settings: WorkerSettings
    policy: Policy
    app: IntelApp
    metrics: MetricsRegistry
    replica: Replica
    publisher: Publisher
    emission: Emission
    cycle: Cycle
    reader: Reader
    group: GroupMember
    emitter: Emitter
    pipeline: Pipeline
    digests: DigestTimer
    probe: HealthProbe
    view: WorkerView
    links: VerdictPublisher

    def readiness(self) -> Readiness:
        return self.probe.readiness()


class WorkerView:
    """The worker's :class:`~app.api.live.LiveView`: the replica's reads, and the writes
    (notes, digests) through their own checkpoints."""

    def __init__(self, replica: Replica, emitter: Emitter, digests: DigestTimer) -> None:
        self.replica = replica
        self.emitter = emitter
        self.digests = digests
        self.notes_sent = 0

    @property
    def ready(self) -> bool:
        return self.replica.ready

    def as_of(self) -> datetime:
        return self.replica.as_of()

    async def read(self, query: Query[T]) -> T:
        return await self.replica.read(query)

    def recent_followups(self) -> list[FollowUp]:
        return self.replica.recent_followups()

    def velocity(self) -> list[QuarterVelocity]:
        return self.replica.velocity()

    async def emit_note(self, note: Note) -> None:
        checkpoint = Checkpoint(self.emitter)
        await checkpoint.send(Outgoing("incidents.notes", note.incident_id.encode(),
                                       dump_json(note), note.note_id))
        await checkpoint.commit()
        self.notes_sent += 1

    async def run_digest(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        return await self.digests.produce(request)


class VerdictPublisher:
    """The worker's :class:`app.api.feedback.LinkPublisher`: a verdict of ``POST
    /v1/feedback/links`` goes to ``learning.events`` (keyed by its incident) through a
    checkpoint of its own, so the call returns once the broker acknowledged it. The
    data path reads it back like any other input."""

    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter

    async def publish_link(self, event: LinkVerdict) -> None:
        from app.api.feedback import PublishUnavailable

        checkpoint = Checkpoint(self.emitter)
        try:
            await checkpoint.send(Outgoing("learning.events", event.incident_id.encode(),
                                           dump_json(event), event.event_id))
            await checkpoint.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any client error: not recorded, retry later
            raise PublishUnavailable(f"learning.events: {type(exc).__name__}: {exc}") from None


def build_worker(settings: WorkerSettings, policy: Policy | None = None, *,
                 journal: Journal | None = None,
                 clock: Callable[[], datetime | None] = wall_clock) -> Worker:
    """Every part of a worker, wired; ``policy`` defaults to ``INTEL_POLICY_DIR``'s.

    ``journal`` keeps each fetched batch before it is applied (the embedded broker's
    durable history, :mod:`app.broker.history`); ``clock`` is "now" for the digest
    schedule (``incident-intel demo`` moves it through simulated time)."""
    if policy is None:
        policy = load_policy(settings.policy_dir)
    app = create_app(settings)
    metrics = MetricsRegistry()
    inputs = input_topics()
    read = {name: settings.topic(name) for name in (*inputs, *READ_BACK)}
    names = TopicNames.of(read, inputs)
    replica = Replica(policy, read_workers=policy.rate_limits.engine_reads.workers)
    publisher = Publisher(settings.partitions, metrics)
    emission = Emission(metrics)
    cycle = Cycle(replica, publisher, emission, names)
    reader = Reader(settings, read.values())
    group = GroupMember(app, settings, names.inputs)
    producer = _Producer(settings)
    every_topic = {spec.name: settings.topic(spec.name) for spec in catalog_topics()}
    emitter = Emitter(producer, every_topic, f"/incident-intel/{settings.app_id}", metrics,
                      settings.partitions)
    pipeline = Pipeline(cycle=cycle, reader=reader, group=group, emitter=emitter,
                        journal=journal, on_start=producer.start)
    digests = DigestTimer(replica, publisher, emitter, policy, settings.reports_dir,
                          leader=group.leader, stopping=lambda: app.should_stop,
                          clock=clock)
    probe = HealthProbe(settings, WorkerHealth(stuck_after=settings.stuck_partition_seconds,
                                               exit_after=settings.broker_loss_exit_seconds),
                        group, replica, lambda: reader.end_offsets(names.inputs), metrics)
    view = WorkerView(replica, emitter, digests)
    links = VerdictPublisher(emitter)

    app.task(pipeline.run)
    digest_timer.register(app, digests, settings.digest_check_seconds)
    health.register(app, probe)

    async def stop() -> None:
        await pipeline.stop()
        await producer.stop()
        await group.close()
        await probe.close()
        replica.close()

    app.before_stop.append(stop)

    @app.page("/health/")
    async def health_page(web: Any, request: Any) -> Any:
        """Liveness for container health checks."""
        return web.json({"status": "ok", "app_id": settings.app_id})

    @app.page("/ingest/")
    async def ingest_view(web: Any, request: Any) -> Any:
        """Counts of this worker: what a smoke test or an operator checks first."""
        return web.json(emission.stats.as_dict())

    @app.timer(SUMMARY_INTERVAL)
    async def ingest_summary() -> None:
        """One log line when the counts moved; silent when idle."""
        stats = emission.stats
        if stats.summary_due():
            log.info("ingest: %d valid, %d invalid (to %s)", stats.valid, stats.invalid,
                     settings.topic("intel.dlq"))

    return Worker(settings, policy, app, metrics, replica, publisher, emission, cycle, reader,
                  group, emitter, pipeline, digests, probe, view, links)


class _Producer:
    """The worker's Kafka producer, started with the data path and stopped after it."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._producer: Any = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=f"{self.settings.app_id}-emitter", acks="all", linger_ms=0,
            max_batch_size=PRODUCER_BATCH_BYTES, **self.settings.kafka_client_options())
        await producer.start()
        self._producer = producer

    def _started(self) -> Any:
        if self._producer is None:
            raise RuntimeError("the worker's producer is not started")
        return self._producer

    def create_batch(self) -> Batch:
        return cast(Batch, self._started().create_batch())

    async def send_batch(self, batch: Batch, topic: str, *,
                         partition: int) -> asyncio.Future[Any]:
        return cast(asyncio.Future[Any],
                    await self._started().send_batch(batch, topic, partition=partition))

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
