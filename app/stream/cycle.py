"""One cycle of the data path: a batch of records in, the records to send out.

:meth:`Cycle.step` is synchronous and reads no clock, broker or file (the
time for the settle rule is a parameter): given one fetched batch of every
partition the worker reads, and what the consumer group says this worker
owns, it

1. applies each input record it has not applied before to the replica
   (every partition: every worker is a complete replica) and reads what the
   output topics say (follow-ups sent, digests produced, what other writers
   said for keyed records);
2. plans the owner's outputs of the records of its own input partitions at or
   after the offset it owns them from (:mod:`app.stream.emission`), and, once
   the replica is caught up, the correlation records a responder's verdict
   changed, by the owners of those incidents;
3. once the replica is caught up: the keyed records and follow-ups of the
   partitions it owns (:mod:`app.stream.publisher`), and learning velocity
   derived again (at most once per ``VELOCITY_SECONDS`` while inputs flow),
   whose changed quarters the leader sends;

and returns them with the read positions they cover and the input offsets
to commit once they are acknowledged. The asynchronous shell around it
(:mod:`app.stream.pipeline`) fetches, sends, and commits through a
:class:`~app.stream.checkpoint.Checkpoint`. Tests drive it directly with
lists of records (:mod:`app.stream.testing`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.contracts import FollowUp, LinkVerdict, dump_json
from app.intel import publication
from app.intel.publication import OutputKey
from app.intel.watermark import idle_as_of
from app.stream.emission import Emission
from app.stream.emitter import Outgoing
from app.stream.inputs import Rejected, check_record
from app.stream.publisher import AS_OF_HEADER, Publisher
from app.stream.replica import Replica

log = logging.getLogger(__name__)

TP = tuple[str, int]
"""(real topic name, partition)."""
VELOCITY_TOPIC = "learning.velocity"
VELOCITY_SECONDS = 30.0
"""Learning velocity is re-derived at most this often while inputs flow (and whenever
they pause). Deriving a quarter walks its incidents (80 ms for a quarter of 30k), so
doing it more often would stall the data path for a figure that moves slowly."""


def velocity_record_id(quarter: str, value: bytes | None) -> str:
    """Deterministic ``intel-id`` of a ``learning.velocity`` record: same row, same id."""
    digest = hashlib.sha256(value).hexdigest()[:20] if value is not None else "gone"
    return f"velocity:{quarter}:{digest}"


@dataclass(frozen=True)
class TopicNames:
    """Real topic names (with ``INTEL_TOPIC_PREFIX``) and their catalog names."""

    catalog: Mapping[str, str]
    """Real name → catalog name, for every topic the data path reads."""
    inputs: frozenset[str]
    """Real names of the input topics."""
    incidents: str
    """Real name of ``incidents.events``: its partition numbers own the keyed outputs."""

    @classmethod
    def of(cls, real: Mapping[str, str], inputs: Sequence[str]) -> TopicNames:
        """From catalog name → real name of every topic read, and the input names."""
        return cls({v: k for k, v in real.items()}, frozenset(real[n] for n in inputs),
                   real["incidents.events"])


@dataclass(frozen=True)
class Ownership:
    """What the consumer group says this worker owns, for one cycle."""

    floors: Mapping[TP, int]
    """Owned input partitions (with a known committed offset) → the offset from which
    this worker emits their records."""
    keyed: frozenset[int]
    """Partition numbers whose keyed records and follow-ups this worker writes."""
    leader: bool = False


NOBODY = Ownership({}, frozenset())


@dataclass
class Step:
    """A cycle's records to send, the read positions they cover, the offsets to commit."""

    out: list[Outgoing]
    positions: dict[TP, int]
    commit: dict[TP, int]
    ready_now: bool = False
    """The replica became ready in this cycle."""


@dataclass
class Cycle:
    """The data path's state beside the replica, and the step (see the module docstring)."""

    replica: Replica
    publisher: Publisher
    emission: Emission
    names: TopicNames
    read_to: dict[TP, int] = field(default_factory=dict)
    """The furthest offset read per partition: everything before it has been applied."""
    position: dict[TP, int] = field(default_factory=dict)
    """Where the reading of each partition is now: behind :attr:`read_to` while records
    are read again after a seek (:meth:`rewind`). Commits follow it, never ``read_to``."""
    applied_to: dict[TP, int] = field(default_factory=dict)
    """Read positions whose outputs are acknowledged (marked applied by the checkpoint)."""
    velocity_at: float | None = None
    idle_since: float | None = None
    """When (monotonic seconds) an input was last applied or event time last advanced
    for lack of one; ``None`` until the replica is ready."""

    def reset(self) -> None:
        """Start over from nothing (after the data path failed)."""
        self.replica.reset()
        self.publisher.reset()
        self.emission.last.clear()
        self.read_to.clear()
        self.position.clear()
        self.applied_to.clear()
        self.velocity_at = None
        self.idle_since = None

    def rewind(self, tp: TP, offset: int) -> None:
        """The reader was sent back to ``offset`` of ``tp``: what it reads again up to
        :attr:`read_to` is emitted (if owned) but not applied again."""
        self.position[tp] = offset

    def mark_applied(self, positions: Mapping[TP, int]) -> None:
        for tp, offset in positions.items():
            if offset > self.applied_to.get(tp, 0):
                self.applied_to[tp] = offset

    def step(self, fetch: Sequence[tuple[str, Sequence[Any]]], ownership: Ownership, *,
             caught_up: bool, now: float, wall: float | None = None) -> Step:
        """One cycle over ``fetch`` ((real topic, one partition's records in offset
        order) pairs); ``now`` is a monotonic clock reading, ``wall`` the wall clock
        (Unix seconds; without it event time never advances for lack of input)."""
        replica, engine = self.replica, self.replica.engine
        dirty: set[OutputKey] = set()
        starts: list[int] = []
        relinked: set[str] = set()
        ready = replica.ready
        positions: dict[TP, int] = {}
        policy = self.replica.policy.intel
        for topic, records in fetch:
            if not records:
                continue
            name = self.names.catalog[topic]
            tp = (topic, records[0].partition)
            done = self.read_to.get(tp, 0)
            if topic in self.names.inputs:
                floor = ownership.floors.get(tp)
                for record in records:
                    first = record.offset >= done
                    emit = floor is not None and record.offset >= floor
                    if not (first or emit):
                        continue
                    event = check_record(record.value, key=record.key, topic=topic,
                                         partition=record.partition, offset=record.offset,
                                         received_ms=record.timestamp, policy=policy)
                    if isinstance(event, Rejected):
                        if emit:
                            self.emission.rejected(topic, name, record, event)
                        continue
                    if first:
                        folded = replica.fold(event)
                        self.idle_since = now
                        if not ready:
                            pass  # nothing keyed is published before: no key to note
                        elif isinstance(event, LinkVerdict):
                            relinked.update(engine.answers_changed_by(engine.verdict_change))
                        elif folded.fingerprint is not None:
                            dirty.add(publication.alert_moved(folded.fingerprint))
                        elif folded.change is not None:
                            change = folded.change
                            dirty |= publication.moved_by(change, engine)
                            starts.append(change.after.started)
                            if change.before is not None:
                                starts.append(change.before.started)
                    if emit:
                        self.emission.accepted(name, record, event)
            else:
                for record in records:
                    if record.offset >= done:
                        self._read_output(name, record)
            end = records[-1].offset + 1
            self.position[tp] = end
            if end > done:
                self.read_to[tp] = end
            positions[tp] = self.read_to[tp]
        quiet = not any(records for _, records in fetch)
        if quiet:
            replica.settle()
        if caught_up and not replica.ready:
            self._resume_event_time()
        ready_now = caught_up and replica.caught_up()
        if ready_now:
            self.idle_since = now
        elif replica.ready and wall is not None:
            self._advance_when_idle(now, wall)
        gained = self.publisher.reassign(ownership.keyed) if replica.ready else frozenset()
        if replica.ready:
            # A verdict changes the answers of its pair: their owners send them again.
            self.emission.relinked(i for i in relinked if self.publisher.owns(i))
        out = self.emission.outputs(engine)
        if replica.ready:
            out += self.publisher.gained(engine, gained)
            out += self.publisher.changes(engine, dirty, starts, quiet=quiet, now=now)
            if quiet or self.velocity_at is None or now - self.velocity_at >= VELOCITY_SECONDS:
                self.velocity_at = now
                replica.derive_velocity()
                if ownership.leader:
                    out += self.velocity()
        commit = {tp: self.position[tp] for tp, floor in ownership.floors.items()
                  if self.position.get(tp, 0) > floor}
        return Step(out, positions, commit, ready_now)

    def _resume_event_time(self) -> None:
        """Before the replica turns ready: event time resumes where the keyed topics say
        it stood, so a restarted worker never publishes time going backwards after a quiet
        period advanced it."""
        said = self.publisher.latest_as_of()
        if said is not None:
            self.replica.engine.advance(said)

    def _advance_when_idle(self, now: float, wall: float) -> None:
        """No input applied for ``time.idle_after_seconds``: event time advances to the
        wall clock less the allowed lateness (:func:`~app.intel.watermark.idle_as_of`), and
        the keyed records it changes are published as when an event moves it."""
        policy = self.replica.policy.intel
        if self.idle_since is None or now - self.idle_since < policy.time.idle_after_seconds:
            return
        self.idle_since = now
        self.replica.engine.advance(idle_as_of(round(wall * 1_000_000), policy))

    def _read_output(self, name: str, record: Any) -> None:
        """An output record: what the dedupe table, the digests and the keyed topics
        need to know of it. Someone else's bad record is skipped, never replayed."""
        try:
            if name in publication.KEYED_TOPICS:
                if record.key is not None:
                    self.publisher.read_back(name, record.key, record.value,
                                             _header(record.headers, AS_OF_HEADER))
            elif record.value is None:
                return
            elif name == "intel.followups":
                followup = FollowUp.model_validate_json(record.value)
                self.publisher.followup_read(followup.meta.dedupe_key)
                self.replica.followup_seen(followup)
            elif name == "intel.digests" and record.key is not None:
                self.replica.digest_seen(record.key.decode(), record.value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s[%d]@%d: skipped an output record the worker cannot read "
                        "(%s: %s)", name, record.partition, record.offset,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    def velocity(self) -> list[Outgoing]:
        """The quarters that changed since the last call (tombstones for removed ones)."""
        changes = self.replica.tracker.take_changed()
        out = [Outgoing(VELOCITY_TOPIC, row.quarter.encode(), value,
                        velocity_record_id(row.quarter, value))
               for row in changes.changed for value in [dump_json(row)]]
        out += [Outgoing(VELOCITY_TOPIC, quarter.encode(), None,
                         velocity_record_id(quarter, None)) for quarter in changes.removed]
        return out


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None
