"""Keyed outputs and follow-ups: one writer per key, chosen by the consumer group.

The replica's engine renders every key's record (:mod:`app.intel.publication`);
this worker sends only the keys it owns. A key belongs to the partition Kafka's
default partitioner gives it (murmur2 of the key bytes), and a partition to the
worker that the consumer group assigned the same partition number of
``incidents.events``. Output topics have the input topics' partition count, so
a key's records also land in that partition: one writer per key and per output
partition.

What was last said for each key is known without reading back what this
worker wrote: the data path reads the keyed output partitions it does not own
(what other writers said, :meth:`Publisher.read_back`) and this worker
remembers what it sent itself (:attr:`Publisher.mine`). A key is sent when
what it says differs, so a new owner after a rebalance or a restart
re-publishes only what differs.

After a cycle (while inputs flow, at most every ``KEYED_SECONDS`` and no more
than ``KEYED_SHARE`` of the time) :meth:`Publisher.changes` sends the owned
keys the cycles since can have changed — keys of changed incidents and alert
fingerprints, keys whose incidents or transitions crossed a window edge as the
watermark moved, and every key of a partition just gained — and the follow-ups
of the digest weeks the watermark passed or a late incident changed. When the inputs have been
quiet for ``settle_seconds``, non-zero recurrence records are re-stated at the
current watermark, so a settled topic says the watermark its counts are true
at. Follow-ups are keyed by their dedupe key, sent by the owner of their
bucket, and never twice: ``intel.followups`` is read back as the dedupe table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from app.contracts import FollowUp, dump_json
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, micros
from app.intel.publication import Content, OutputKey
from app.metrics import MetricsRegistry
from app.stream.emitter import Outgoing, partition_of

log = logging.getLogger(__name__)

AS_OF_HEADER = "intel-as-of"
SETTLE_SECONDS = 1.0
"""Inputs quiet this long: recurrence records are re-stated at the current watermark."""
KEYED_SECONDS = 0.1
"""While inputs flow, keyed records are published at most this often: a kind or a
service is changed by many events of a burst and is rendered once for all of them."""
KEYED_SHARE = 0.1
"""While inputs flow, publishing keyed records takes at most about this share of the
time: after a publication that took ``t`` seconds the next waits ``t / KEYED_SHARE``.
Correlation records come first: with a quarter, the rendering at 1,000 events/s took
its whole quarter and doubled the latency's p99 (docs/architecture.md §7)."""


def _partition_of_key(key: str, partitions: int) -> int:
    return partition_of(key.encode(), partitions)


@dataclass(frozen=True, slots=True)
class Seen:
    """What a keyed record on the topic says, and the watermark it was computed at."""

    content: Content
    as_of: int | None


NOTHING = Seen(None, None)


@dataclass
class Publisher:
    """Sends the keyed records and follow-ups of the partitions this worker owns."""

    partitions: int
    metrics: MetricsRegistry | None = None
    settle_seconds: float = SETTLE_SECONDS
    seen: dict[OutputKey, Seen] = field(default_factory=dict)
    """Latest record per key as read from the topics (what other writers said)."""
    mine: dict[OutputKey, Seen] = field(default_factory=dict)
    """What this worker sent for the keys it owns."""
    emitted: set[str] = field(default_factory=set)
    """Follow-up dedupe keys on ``intel.followups`` or sent by this worker."""
    owned: frozenset[int] = frozenset()
    keyed_seconds: float = KEYED_SECONDS
    published_at: int | None = None
    """The watermark of the last publication (microseconds)."""
    keyed_at: float | None = None
    """When the last publication was (monotonic seconds)."""
    clock: Callable[[], float] = time.monotonic
    """Measures what a publication costs (only to space the next one out)."""
    _cost: float = 0.0
    """What the last publication took (seconds of :attr:`clock`)."""
    _dirty: set[OutputKey] = field(default_factory=set)
    _starts: list[int] = field(default_factory=list)
    settled_at: int | None = None
    quiet_since: float = 0.0

    def reset(self) -> None:
        """Forget everything read and sent (the data path starts over)."""
        self.seen.clear()
        self.mine.clear()
        self.emitted.clear()
        self.owned = frozenset()
        self.published_at = self.settled_at = self.keyed_at = None
        self._cost = 0.0
        self._dirty.clear()
        self._starts.clear()

    def owns(self, key: str) -> bool:
        return _partition_of_key(key, self.partitions) in self.owned

    def reassign(self, owned: Iterable[int]) -> frozenset[int]:
        """Take the new assignment; returns the partitions gained."""
        new = frozenset(owned)
        gained = new - self.owned
        if new != self.owned:
            lost = self.owned - new
            self.mine = {k: v for k, v in self.mine.items()
                         if _partition_of_key(k.key, self.partitions) not in lost}
            self.owned = new
        return gained

    def keys_in(self, partitions: frozenset[int], engine: IntelEngine,
                as_of: int) -> set[OutputKey]:
        """Every key of ``partitions`` that has a record or should have one."""
        candidates = publication.live_keys(engine, as_of) | set(self.seen) | set(self.mine)
        return {k for k in candidates
                if _partition_of_key(k.key, self.partitions) in partitions}

    def read_back(self, topic: str, key: bytes, value: bytes | None, as_of: str | None) -> None:
        """A record of a keyed output topic, as the data path reads it."""
        out = OutputKey(topic, key.decode())
        seen = Seen(publication.content(topic, value), _micros(as_of))
        self.seen[out] = seen
        if self.mine.get(out) == seen:
            del self.mine[out]

    def followup_read(self, dedupe_key: str) -> None:
        """A follow-up on ``intel.followups``: never sent again."""
        self.emitted.add(dedupe_key)

    def latest_as_of(self) -> int | None:
        """The latest watermark any keyed record read or sent was computed at."""
        return max((s.as_of for s in (*self.seen.values(), *self.mine.values())
                    if s.as_of is not None), default=None)

    def last(self, key: OutputKey) -> Seen:
        return self.mine.get(key) or self.seen.get(key) or NOTHING

    def changes(self, engine: IntelEngine, dirty: set[OutputKey], starts: list[int], *,
                quiet: bool, now: float) -> list[Outgoing]:
        """What the cycles since the last publication send: the owned keys they changed
        and the follow-ups of the weeks they can have changed; when the inputs have been
        quiet a while, recurrence records at the current watermark. ``now`` is a
        monotonic clock reading. (Partitions just gained are published whole by
        :meth:`gained`.)

        While inputs flow this publishes at most every ``keyed_seconds``, and no more
        than ``KEYED_SHARE`` of the time: what the cycles in between changed is kept for
        it, so a key many events change is rendered once, and a publication whose keys
        are costly to render (a bucket walks its window) does not make every cycle as
        slow. When the inputs pause, at once."""
        self._dirty |= dirty
        self._starts += starts
        if not quiet:
            self.quiet_since = now
        watermark = engine.watermark
        if watermark is None or not (quiet or self.keyed_at is None
                                     or now - self.keyed_at >= max(
                                         self.keyed_seconds, self._cost / KEYED_SHARE)):
            return []
        started = self.clock()
        self.keyed_at = now
        dirty, starts, self._dirty, self._starts = self._dirty, self._starts, set(), []
        as_of = from_micros(watermark)
        if self.published_at is not None and watermark != self.published_at:
            dirty |= publication.aged(engine, self.published_at, watermark)
        weeks = set(publication.weeks_completed(self.published_at, watermark))
        weeks |= publication.weeks_of(starts, watermark)
        self.published_at = watermark
        out = self.publish(engine, dirty, as_of)
        for week in sorted(weeks):
            out += self.followups(engine.week_followups(week, self.emitted).created)
        if (quiet and now - self.quiet_since >= self.settle_seconds
                and self.settled_at != watermark):
            self.settled_at = watermark
            keys = self.keys_in(self.owned, engine, watermark)
            out += self.publish(engine, keys, as_of, refresh=True)
        self._cost = self.clock() - started
        return out

    def gained(self, engine: IntelEngine, partitions: frozenset[int]) -> list[Outgoing]:
        """Every key of ``partitions`` whose record differs from what the topic says, and
        every follow-up of theirs not sent yet: what a new owner publishes."""
        watermark = engine.watermark
        if watermark is None or not partitions:
            return []
        keys = self.keys_in(partitions, engine, watermark)
        out = self.publish(engine, keys, from_micros(watermark))
        weeks = publication.weeks_of((s for s, _ in engine.timeline.window(
            -1 << 62, watermark)), watermark)
        for week in sorted(weeks):
            out += self.followups(engine.week_followups(week, self.emitted).created)
        return out

    def publish(self, engine: IntelEngine, keys: Iterable[OutputKey], as_of: datetime, *,
                refresh: bool = False) -> list[Outgoing]:
        """The owned ``keys`` whose record differs from the last one on the topic.

        With ``refresh``, a recurrence record computed at an older watermark is
        sent again at ``as_of`` even if its counts did not change, so a settled
        topic says the watermark it is true at.
        """
        out: list[Outgoing] = []
        at = micros(as_of)
        header = ((AS_OF_HEADER, as_of.isoformat()),)
        for key in sorted(keys):
            if not self.owns(key.key):
                continue
            last = self.last(key)
            row = publication.row(engine, key, as_of)
            stale = refresh and key.topic == publication.RECURRENCE \
                and not publication.quiet(row.content) and last.as_of != at
            # A key that never had a record needs none to say it is quiet.
            unchanged = row.content == last.content or (
                last.content is None and publication.quiet(row.content))
            if unchanged and not stale:
                continue
            out.append(Outgoing(key.topic, key.key.encode(), row.value, row.record_id, header))
            self.mine[key] = Seen(row.content, at)
            if key.topic == publication.RECURRENCE and self.metrics is not None:
                key_type, _, value = key.key.partition(":")
                level = row.content.level if isinstance(
                    row.content, publication.RecurrenceContent) else "none"
                self.metrics.set_recurrence(key_type, value, level)
        return out

    def followups(self, followups: Iterable[FollowUp], *,
                  owned_only: bool = True) -> list[Outgoing]:
        """The follow-ups not emitted yet (now counted as emitted); with ``owned_only``,
        only those of buckets this worker owns."""
        out: list[Outgoing] = []
        for followup in followups:
            meta = followup.meta
            if meta.dedupe_key in self.emitted or (owned_only
                                                   and not self.owns(meta.bucket_key)):
                continue
            out.append(Outgoing("intel.followups", followup.incident_id.encode(),
                                dump_json(followup), meta.dedupe_key))
            self.emitted.add(meta.dedupe_key)
        return out


def _micros(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return micros(datetime.fromisoformat(text))
    except ValueError:
        return None
