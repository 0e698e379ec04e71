"""The replica: a complete, live :class:`~app.intel.engine.IntelEngine` in every worker.

Every worker runs one consumer of its own, outside the consumer group, that
reads *all* partitions of the three input topics from the beginning and folds
every valid event into its engine — the engine ``incident-intel tool`` runs,
fed the same events by the same input rule, so every answer is the offline
answer. The same consumer reads back the outputs it needs: ``intel.followups``
(the follow-up dedupe table), ``intel.digests`` (weeks produced),
``intel.recurrence`` and ``intel.buckets`` (what each key last said) and
``intel.correlations`` (recent answers, for the dashboard).

After each fetch the replica publishes what its records changed, for the keys
this worker owns (:mod:`app.stream.publisher`): the keyed records an incident
change or the watermark's move can alter, and the follow-ups of digest weeks
the watermark passed or a late incident changed. Only then does it mark the
fetched offsets as applied, so the input agent, which waits for that before it
emits an incident's correlation and commits, commits nothing whose outputs
are not sent (:meth:`LiveReplica.wait_applied`).

"As of" for live answers is the newest ``occurred_at`` applied (the epoch
before any event). ``ready`` turns true once the consumer has reached the end
offsets it saw at start; until then nothing is published, the API answers 503
and the digest timer waits.

Learning velocity is kept incrementally (:class:`~app.intel.velocity.VelocityTracker`)
and published to ``learning.velocity`` by the leader once caught up; record ids
are ``velocity:<quarter>:<hash of the value>``.

Implements :class:`app.api.live.LiveView`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from app.contracts import (
    AlertTransition,
    CorrelateResponse,
    DlqRecord,
    FollowUp,
    Note,
    QuarterVelocity,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
    dump_json,
)
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import EPOCH, from_micros
from app.intel.publication import OutputKey
from app.intel.velocity import VelocityTracker
from app.stream.consumer import FETCH_MAX_WAIT_MS
from app.stream.ingest import check_record
from app.stream.publisher import AS_OF_HEADER, Outgoing, Publisher

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.policy import Policy
    from app.stream.app import IntelApp

log = logging.getLogger(__name__)

T = TypeVar("T")
RECENT = 20
INPUTS = ("incidents.events", "alerts.state", "learning.events")
OUTPUTS = ("intel.followups", "intel.digests", "intel.correlations") + publication.KEYED_TOPICS
RETRY_SECONDS = 2.0
SETTLE_SECONDS = 1.0
"""Inputs quiet this long: recurrence records are re-stated at the current watermark."""
WAIT_LOG_SECONDS = 10.0
"""An input batch waiting this long for the replica is logged (once per interval)."""
VELOCITY_TOPIC = "learning.velocity"
TP = tuple[str, int]
"""(real topic name, partition)."""


def wall_clock() -> datetime:
    """The real time: what the digest schedule is judged at in a worker."""
    return datetime.now(UTC)


def velocity_target(policy: Policy) -> float:
    """``learning.yml``'s recurrence target."""
    return policy.recurrence_target


def velocity_record_id(quarter: str, value: bytes | None) -> str:
    """Deterministic ``intel-id`` of a ``learning.velocity`` record: same row, same id."""
    digest = hashlib.sha256(value).hexdigest()[:20] if value is not None else "gone"
    return f"velocity:{quarter}:{digest}"


@dataclass(frozen=True, slots=True)
class Received:
    """A record as a consumer hands it over (the fields the replica reads)."""

    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    timestamp: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


class LiveReplica:
    """Every event folded into one engine; the worker's :class:`LiveView`."""

    def __init__(self, app: IntelApp) -> None:
        self.app = app
        self.policy = app.policy
        settings = app.intel_settings
        self.publisher = Publisher(settings.partitions)
        self.digests: set[str] = set()
        self.digest_runs = 0
        self.notes_sent = 0
        self.velocity_sent = 0
        self.digest_lock = asyncio.Lock()
        # "Now" for the digest schedule. A simulation swaps in its own event time;
        # a clock answering None holds the schedule until the simulation is ready.
        self.clock: Callable[[], datetime | None] = wall_clock
        # Awaited with every fetch that has records, before it is folded: what the
        # replica answers from and marks applied is kept first (`run`'s durable
        # history, app.broker.history).
        self.journal: Callable[[Sequence[tuple[str, Sequence[Any]]]], Awaitable[None]] | None = None
        self._names = {settings.topic(name): name for name in INPUTS + OUTPUTS}
        self._consumer: Any = None
        self._incidents_topic = settings.topic("incidents.events")
        self._ready = asyncio.Event()
        self._progress = asyncio.Condition()
        self._state = asyncio.Lock()
        """Held while the engine changes (folding) or is read off the loop."""
        self._pool = ThreadPoolExecutor(
            max_workers=app.policy.rate_limits.engine_reads.workers,
            thread_name_prefix="replica-read")
        self.ownership: Callable[[], frozenset[int]] = self._owned
        """The partitions whose keys this worker publishes (the consumer group's say)."""
        self.settle_seconds = SETTLE_SECONDS
        self._reset()

        async def replicate() -> None:
            await self.run()

        app.task(replicate)

    def _reset(self) -> None:
        """Start over from nothing (at start, and after the replica's consumer failed)."""
        self.engine = IntelEngine(self.policy)
        self.tracker = VelocityTracker(velocity_target(self.policy))
        self.applied = 0
        self.offsets: dict[TP, int] = {}
        """Next offset to read per (real topic, partition): everything before is applied."""
        self._correlations: deque[bytes] = deque(maxlen=RECENT)
        self._followups: deque[FollowUp] = deque(maxlen=RECENT)
        self.publisher.seen.clear()
        self.publisher.mine.clear()
        self.publisher.owned = frozenset()
        self._published_at: int | None = None
        self._settled_at: int | None = None
        self._quiet_since = time.monotonic()

    # ------------------------------------------------------------------ folding

    @property
    def emitted(self) -> set[str]:
        """Follow-up dedupe keys known to be on ``intel.followups``."""
        return self.publisher.emitted

    def fold(self, topic: str, record: Any, dirty: set[OutputKey], starts: list[int]) -> None:
        """Fold one consumer record of ``topic`` (real name) into the replica.

        Keys the record can change are added to ``dirty``; the start times of
        incidents it changed to ``starts`` (their digest weeks may change).
        """
        name = self._names[topic]
        if name in INPUTS:
            event = check_record(record.value, key=record.key, topic=topic,
                                 partition=record.partition, offset=record.offset,
                                 received_ms=record.timestamp, policy=self.policy.intel)
            if isinstance(event, DlqRecord):
                return  # the owner of the partition dead-letters it
            change = self.engine.apply(event)
            self.tracker.apply(self.engine.book, event)
            self.applied += 1
            if isinstance(event, AlertTransition):
                dirty.add(publication.alert_moved(event.alert.fingerprint))
            if change is not None:
                dirty |= publication.moved_by(change, self.engine)
                starts.append(change.after.started)
                if change.before is not None:
                    starts.append(change.before.started)
        else:
            try:
                self._read_back(name, record)
            except (ValueError, KeyError, TypeError) as exc:
                # Someone else's bad record on an output topic: skip it, never replay.
                log.warning("%s[%d]@%d: skipped an output record the replica cannot read "
                            "(%s: %s)", topic, record.partition, record.offset,
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    def _read_back(self, name: str, record: Any) -> None:
        """An output record: what the dedupe table, digests, keyed topics and the
        dashboard need to know of it."""
        if name in publication.KEYED_TOPICS:
            if record.key is not None:
                self.publisher.read_back(name, record.key, record.value,
                                         _header(record.headers, AS_OF_HEADER))
        elif record.value is None:
            return
        elif name == "intel.followups":
            followup = FollowUp.model_validate_json(record.value)
            self.emitted.add(followup.meta.dedupe_key)
            self._followups.appendleft(followup)
        elif name == "intel.digests" and record.key is not None:
            self.digests.add(record.key.decode())
        elif name == "intel.correlations":
            # Only the dashboard's last few are ever shown: they are validated when read.
            if orjson.loads(record.value)["related_count"]:
                self._correlations.appendleft(record.value)

    async def run(self) -> None:
        """Consume every partition from the beginning until cancelled; retry on broker
        errors. It does not stop when the worker starts stopping: the input agents
        finish their batches first, and they wait for the replica."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end the replica
                log.warning("replica consumer failed (%s: %s); starting over", type(exc).__name__,
                            exc)
                self._ready.clear()
                self._reset()
                await asyncio.sleep(RETRY_SECONDS)

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        settings = self.app.intel_settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None,
            enable_auto_commit=False, client_id=f"{settings.app_id}-replica",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            **settings.kafka_client_options(),
        )
        await consumer.start()
        self._consumer = consumer
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for topic in self._names
                   for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            log.info("replica reading %d partitions of %d topics from the beginning (%d "
                     "records at start)", len(tps), len(self._names), sum(ends.values()))
            behind = {tp for tp, end in ends.items() if end > 0}
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                if behind and not batch:
                    behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
                await self.absorb([(tp.topic, records) for tp, records in batch.items()],
                                  caught_up=not behind)
        finally:
            self._consumer = None
            await consumer.stop()

    def end_offsets(self) -> dict[TP, int]:
        """End offset of each input partition as the replica's consumer last saw it."""
        consumer = self._consumer
        if consumer is None:
            return {}
        ends: dict[TP, int] = {}
        for tp in consumer.assignment():
            if self._names.get(tp.topic) in INPUTS:
                end = consumer.highwater(tp)
                if end is not None:
                    ends[(tp.topic, tp.partition)] = end
        return ends

    async def absorb(self, batch: Sequence[tuple[str, Sequence[Any]]], *,
                     caught_up: bool = True) -> None:
        """Fold one fetch ((real topic name, one partition's records in offset order)
        pairs), publish what it changed once caught up, then mark its offsets applied."""
        if self.journal is not None and any(records for _, records in batch):
            await self.journal(batch)
        async with self._state:
            before = self.engine.watermark
            dirty: set[OutputKey] = set()
            starts: list[int] = []
            for topic, records in batch:
                for record in records:
                    self.fold(topic, record, dirty, starts)
            if caught_up and not self._ready.is_set():
                log.info("replica ready: %d events applied, as of %s", self.applied,
                         self.as_of().isoformat())
                self._ready.set()
            if self._ready.is_set():
                await self._publish(before, dirty, starts,
                                    quiet=not any(records for _, records in batch))
        async with self._progress:
            for topic, records in batch:
                for record in records:
                    key = (topic, record.partition)
                    self.offsets[key] = max(self.offsets.get(key, 0), record.offset + 1)
            self._progress.notify_all()
        await self.maybe_publish_velocity()

    def apply(self, name: str, key: bytes | None, value: bytes | None, *,
              partition: int = 0, offset: int = 0) -> None:
        """Fold one record of the topic called ``name`` (contract name) without
        publishing: for building a replica in process."""
        record = Received(key, value, partition, offset)
        self.fold(self.app.intel_settings.topic(name), record, set(), [])

    # ------------------------------------------------------------------ publishing

    def _owned(self) -> frozenset[int]:
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - no consumer yet: nothing owned
            return frozenset()
        return frozenset(tp.partition for tp in assignment if tp.topic == self._incidents_topic)

    async def _publish(self, before: int | None, dirty: set[OutputKey], starts: list[int], *,
                       quiet: bool) -> None:
        """Send what this fetch changed for the owned keys (everything, for partitions
        just gained); when the inputs have been quiet a while, re-state recurrence
        records at the current watermark."""
        engine, publisher = self.engine, self.publisher
        watermark = engine.watermark
        if watermark is None:
            return
        as_of = from_micros(watermark)
        gained = publisher.reassign(self.ownership())
        out: list[Outgoing] = []
        weeks: set[str] = set()
        if gained:
            dirty |= publisher.keys_in(gained, engine, watermark)
            weeks |= publication.weeks_of((s for s, _ in engine.timeline.window(
                -1 << 62, watermark)), watermark)
        if self._published_at is not None and watermark != self._published_at:
            dirty |= publication.aged(engine, self._published_at, watermark)
        weeks |= set(publication.weeks_completed(self._published_at, watermark))
        weeks |= publication.weeks_of(starts, watermark)
        self._published_at = watermark
        out += publisher.publish(engine, dirty, as_of)
        for week in sorted(weeks):
            out += publisher.followups(engine.week_followups(week, publisher.emitted).created)
        now = time.monotonic()
        if not quiet:
            self._quiet_since = now
        elif now - self._quiet_since >= self.settle_seconds and self._settled_at != watermark:
            self._settled_at = watermark
            keys = publisher.keys_in(publisher.owned, engine, watermark)
            out += publisher.publish(engine, keys, as_of, refresh=True)
        if out:
            await self.app.outbox.send_all(out)
            await self.app.outbox.flush()
            for record in out:
                if record.topic == publication.RECURRENCE and record.value is not None:
                    row = orjson.loads(record.value)
                    self.app.metrics.set_recurrence(row["type"], row["key"], row["level"])

    async def wait_applied(self, heads: Mapping[TP, int]) -> None:
        """Wait until the replica is ready and has applied (and published for) every
        offset in ``heads`` ((real topic, partition) → offset)."""
        await self._ready.wait()

        def applied() -> bool:
            return all(self.offsets.get(tp, 0) > offset for tp, offset in heads.items())

        async with self._progress:
            while not applied():
                try:
                    await asyncio.wait_for(self._progress.wait_for(applied), WAIT_LOG_SECONDS)
                except TimeoutError:
                    missing = {f"{t}[{p}]": (o, self.offsets.get((t, p)))
                               for (t, p), o in heads.items() if self.offsets.get((t, p), 0) <= o}
                    log.warning("waiting for the replica to apply %s (offset wanted, next "
                                "offset it will read)", missing)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # ------------------------------------------------------------------ velocity

    async def maybe_publish_velocity(self) -> int:
        """After each fetch: publish velocity changes if caught up and leading, else nothing.

        A follower keeps its tracker current but sends nothing; if it becomes
        leader it sends every quarter once (same ids as before: harmless).
        """
        if not self._ready.is_set() or not self.app.is_leader():
            return 0
        return await self.publish_velocity()

    async def publish_velocity(self) -> int:
        """Send the quarters that changed since the last call (tombstones for removed ones)."""
        changes = self.tracker.take_changed()
        out = [Outgoing(VELOCITY_TOPIC, row.quarter.encode(), value,
                        velocity_record_id(row.quarter, value))
               for row in changes.changed for value in [dump_json(row)]]
        out += [Outgoing(VELOCITY_TOPIC, quarter.encode(), None,
                         velocity_record_id(quarter, None)) for quarter in changes.removed]
        if out:
            await self.app.outbox.send_all(out)
            await self.app.outbox.flush()
            self.velocity_sent += len(out)
        return len(out)

    # ------------------------------------------------------------------ LiveView

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def as_of(self) -> datetime:
        watermark = self.engine.watermark
        return EPOCH if watermark is None else from_micros(watermark)

    async def read(self, query: Callable[[IntelEngine, datetime], T]) -> T:
        """Run ``query`` on the replica's own thread pool while folding pauses.

        A slow read (a digest over a million incidents takes tens of seconds) so
        never blocks the event loop that heartbeats, serves and emits; the
        replica waits for it instead of changing the engine under it.
        """
        async with self._state:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, query, self.engine, self.as_of())

    def recent_correlations(self) -> list[CorrelateResponse]:
        out = []
        for value in self._correlations:
            try:
                out.append(CorrelateResponse.model_validate_json(value))
            except ValueError:
                continue  # someone else's bad record: the dashboard shows the rest
        return out

    def recent_followups(self) -> list[FollowUp]:
        return list(self._followups)

    def velocity(self) -> list[QuarterVelocity]:
        """The tracker's quarters: only quarters whose inputs changed are rebuilt."""
        return self.tracker.quarters()

    async def emit_note(self, note: Note) -> None:
        await self.app.outbox.send("incidents.notes", note.incident_id, dump_json(note),
                                   note.note_id)
        await self.app.outbox.flush()
        self.notes_sent += 1

    async def run_digest(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        from app.stream.digest_timer import produce

        return await produce(self.app, request, publish=False)

    def metrics_text(self) -> str:
        """Nothing of its own: the worker's metrics are in ``app.metrics`` (the registry
        ``/metrics`` renders after this)."""
        return ""
