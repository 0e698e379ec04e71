"""The replica: a complete, live :class:`~app.intel.engine.IntelEngine` in every worker.

The digest, the release gate and the query API need every incident, not one
partition's. Every worker therefore runs one extra consumer, outside the
consumer group, that reads *all* partitions of the three input topics from
the beginning and folds every valid event into its own engine — the very
engine ``incident-intel tool`` runs, fed the same events, so the answers are
the offline answers. (This stands in for a GlobalTable: a GlobalTable would
replay the same records into a key/value store, and the engine would still
have to be rebuilt from it.) The same consumer reads ``intel.followups``
(the dedupe keys already emitted, by any worker or digest), ``intel.digests``
(the weeks already produced) and ``intel.correlations`` (recent answers).

Learning velocity is kept incrementally: every applied event also feeds a
:class:`~app.intel.velocity.VelocityTracker` (it re-reads only what the event
could change), so :meth:`LiveReplica.velocity` is a cheap read and the quarters
that changed are known after each fetch. Every worker runs a replica, but only
the leader publishes them to ``learning.velocity`` (key ``YYYY-Qn``,
tombstones for quarters that no longer hold data), and only once the replica
has caught up, so the topic never sees a half-replayed history. The record id
(``intel-id``) is ``velocity:<quarter>:<hash of the value>``: when leadership
moves, the new leader re-sends every quarter once under the same ids, which
a compacted topic and an id-deduplicating consumer both absorb.

"As of" for live answers is the newest ``occurred_at`` the replica has
applied (the epoch before any event): deterministic for a given set of
events, whatever the arrival order. ``ready`` turns true once the consumer has
reached the end offsets it saw at start; until then the API answers 503 and
the digest timer waits.

Implements :class:`app.api.live.LiveView`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from app.contracts import (
    CorrelateResponse,
    FollowUp,
    InvalidEvent,
    Note,
    QuarterVelocity,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
    decode_event,
    dump_json,
)
from app.intel.engine import IntelEngine
from app.intel.periods import EPOCH
from app.intel.velocity import LearningPolicy, VelocityTracker
from app.stream.consumer import FETCH_MAX_WAIT_MS

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.policy import Policy
    from app.stream.app import IntelApp

log = logging.getLogger(__name__)

T = TypeVar("T")
RECENT = 20
INPUTS = ("incidents.events", "alerts.state", "learning.events")
OUTPUTS = ("intel.followups", "intel.digests", "intel.correlations")
RETRY_SECONDS = 2.0
VELOCITY_TOPIC = "learning.velocity"


def wall_clock() -> datetime:
    """The real time: what the digest schedule is judged at in a worker."""
    return datetime.now(UTC)


def velocity_target(policy: Policy) -> float:
    """``learning.yml``'s recurrence target (0.0 when the policy has no learning file)."""
    learning = policy.extra.get("learning.yml")
    return learning.recurrence_target if isinstance(learning, LearningPolicy) else 0.0


def velocity_record_id(quarter: str, value: bytes | None) -> str:
    """Deterministic ``intel-id`` of a ``learning.velocity`` record: same row, same id."""
    digest = hashlib.sha256(value).hexdigest()[:20] if value is not None else "gone"
    return f"velocity:{quarter}:{digest}"


class LiveReplica:
    """Every event folded into one engine; the worker's :class:`LiveView`."""

    def __init__(self, app: IntelApp) -> None:
        self.app = app
        self.policy = app.policy
        self.engine = IntelEngine(app.policy)
        self.emitted: set[str] = set()
        self.digests: set[str] = set()
        self.applied = 0
        self.digest_runs = 0
        self.notes_sent = 0
        self._as_of: datetime = EPOCH
        self._ready = asyncio.Event()
        self._correlations: deque[CorrelateResponse] = deque(maxlen=RECENT)
        self._followups: deque[FollowUp] = deque(maxlen=RECENT)
        self.tracker = VelocityTracker(velocity_target(app.policy))
        self.velocity_sent = 0
        self.digest_lock = asyncio.Lock()
        # "Now" for the digest schedule. A simulation swaps in its own event time;
        # a clock answering None holds the schedule until the simulation is ready.
        self.clock: Callable[[], datetime | None] = wall_clock
        # Next offset to read per (DESIGN.md topic name, partition): how far it has read.
        self.offsets: dict[tuple[str, int], int] = {}
        self._topics = {app.intel_settings.topic(name): name for name in INPUTS + OUTPUTS}

        async def replicate() -> None:
            await self.run()

        app.task(replicate)

    # ------------------------------------------------------------------ folding

    def apply(self, name: str, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of topic ``name`` (DESIGN.md name) into the replica."""
        if value is None:
            return
        if name in INPUTS:
            try:
                event = decode_event(value)
            except InvalidEvent:
                return  # the ingest agents dead-letter it
            self.engine.apply(event)
            self.tracker.apply(self.engine.book, event)
            self.applied += 1
            if event.occurred_at > self._as_of:
                self._as_of = event.occurred_at
        elif name == "intel.followups":
            followup = FollowUp.model_validate_json(value)
            if followup.meta.dedupe_key not in self.emitted:
                self.emitted.add(followup.meta.dedupe_key)
                self._followups.appendleft(followup)
        elif name == "intel.digests" and key is not None:
            self.digests.add(key.decode())
        elif name == "intel.correlations":
            response = CorrelateResponse.model_validate_json(value)
            if response.related_count:
                self._correlations.appendleft(response)

    async def run(self) -> None:
        """Consume every partition from the beginning, forever; retry on broker errors."""
        while not self.app.should_stop:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end the replica
                log.warning("replica consumer failed (%s: %s); retrying", type(exc).__name__,
                            exc)
                self.engine = IntelEngine(self.policy)  # start over from the beginning
                self.tracker = VelocityTracker(velocity_target(self.policy))
                self.applied, self._as_of = 0, EPOCH
                self.offsets.clear()
                await asyncio.sleep(RETRY_SECONDS)

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        settings = self.app.intel_settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None,
            enable_auto_commit=False, client_id=f"{settings.app_id}-replica",
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            **settings.kafka_client_options(),
        )
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for topic in self._topics
                   for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            behind = {tp for tp, end in ends.items() if end > 0}
            while not self.app.should_stop:
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                for tp, records in batch.items():
                    name = self._topics[tp.topic]
                    for record in records:
                        self.apply(name, record.key, record.value)
                    if records:
                        self.offsets[(name, tp.partition)] = records[-1].offset + 1
                if behind and not batch:
                    behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
                if not behind and not self._ready.is_set():
                    log.info("replica ready: %d events applied, as of %s", self.applied,
                             self._as_of.isoformat())
                    self._ready.set()
                await self.maybe_publish_velocity()
        finally:
            await consumer.stop()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def maybe_publish_velocity(self) -> int:
        """After each fetch: publish velocity changes if caught up and leading, else nothing.

        A follower keeps its tracker current but sends nothing; if it becomes
        leader it sends every quarter once (same ids as before: harmless).
        """
        if not self._ready.is_set() or not self.app.is_leader():
            return 0
        return await self.publish_velocity()

    async def publish_velocity(self) -> int:
        """Send the quarters that changed since the last call (tombstones for removed ones).

        The caller decides who publishes (the leader, once caught up); returns
        how many records were sent.
        """
        changes = self.tracker.take_changed()
        for row in changes.changed:
            value = dump_json(row)
            await self.app.outbox.send(VELOCITY_TOPIC, row.quarter, value,
                                       velocity_record_id(row.quarter, value))
        for quarter in changes.removed:
            await self.app.outbox.send(VELOCITY_TOPIC, quarter, None,
                                       velocity_record_id(quarter, None))
        sent = len(changes.changed) + len(changes.removed)
        if sent:
            await self.app.outbox.flush()
            self.velocity_sent += sent
        return sent

    # ------------------------------------------------------------------ LiveView

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def as_of(self) -> datetime:
        return self._as_of

    async def read(self, query: Callable[[IntelEngine, datetime], T]) -> T:
        """Run inline: the replica only changes between awaits, so the state is consistent."""
        return query(self.engine, self._as_of)

    def recent_correlations(self) -> list[CorrelateResponse]:
        return list(self._correlations)

    def recent_followups(self) -> list[FollowUp]:
        return list(self._followups)

    def velocity(self) -> list[QuarterVelocity]:
        """The tracker's quarters: only quarters whose inputs changed are rebuilt.

        Equal to ``velocity_by_quarter(book, target, as_of=as_of())`` whenever no
        incident starts after the newest event time applied (events describe
        incidents that already started).
        """
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
        stats = self.app.ingest_stats
        lines: list[tuple[str, str, str, Any]] = [
            ("intel_replica_ready", "gauge", "1 once the replica caught up.", int(self.ready)),
            ("intel_replica_events_applied", "counter", "Valid events folded into the replica.",
             self.applied),
            ("intel_replica_incidents", "gauge", "Incidents in the replica.",
             len(self.engine.book.incidents)),
            ("intel_replica_as_of_seconds", "gauge", "Newest event time applied.",
             self._as_of.timestamp()),
            ("intel_ingest_valid_total", "counter", "Valid records consumed by this worker.",
             stats.valid),
            ("intel_dlq_total", "counter", "Records sent to intel.dlq by this worker.",
             stats.invalid),
            ("intel_followups_known", "gauge", "Follow-up dedupe keys emitted (all workers).",
             len(self.emitted)),
            ("intel_digests_known", "gauge", "Weekly digests published (all workers).",
             len(self.digests)),
            ("intel_digest_runs_total", "counter", "Digests produced by this worker.",
             self.digest_runs),
            ("intel_velocity_records_total", "counter",
             "learning.velocity records this worker published (leader only).",
             self.velocity_sent),
        ]
        out: list[str] = []
        for name, kind, text, value in lines:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        out += ["# HELP intel_records_sent_total Records this worker sent, by topic.",
                "# TYPE intel_records_sent_total counter"]
        for topic, count in sorted(self.app.outbox.sent.items()):
            out.append(f'intel_records_sent_total{{topic="{topic}"}} {count}')
        return "\n".join(out) + "\n"
